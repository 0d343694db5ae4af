"""Deploys and rollbacks of App Platform apps through pydo, as jobs in rows.

A deploy is started by `deploy_start` (roles, gates, single flight by a unique constraint) and
run by `deploy_run` in a Celery worker: it claims the row by conditional update, creates the
DigitalOcean deployment and stores its id before anything else, then follows the phase, the
progress steps and the logs until the deployment ends; on ACTIVE it watches health for the
environment's validation period and rolls back (validate, create, commit) with an incident when
health fails. A worker killed on the way leaves a live row whose heartbeat goes stale;
`deploys_resume` sends it again and the next worker follows the same deployment."""

import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.policies import HeadersPolicy
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from pydo import Client

from ops.models import (
    Backup,
    ChecklistRun,
    Deploy,
    DeployKind,
    DeployStatus,
    Environment,
    Incident,
    JobStatus,
)
from ops.models.checklists import RunStatus
from ops.models.health import CheckState
from ops.models.incidents import OPEN_STATUSES
from ops.models.releases import LIVE_DEPLOY, RUNNING_DEPLOY
from ops.selectors.health import kpi_values
from ops.selectors.maintenance import deploy_freezes
from ops.services.health import health_result_store, run_checks
from ops.services.health_checks import describe_target
from ops.services.incidents import incident_open
from portal.celery import app
from portal.errors import ActionRefused
from portal.permissions import require_perm
from portal.services.audit import audit_record

logger = logging.getLogger(__name__)

ENDED_PHASES = {"ACTIVE", "ERROR", "CANCELED", "SUPERSEDED"}
LOG_LINES_KEPT = 400
TRANSIENT_ERRORS_ALLOWED = 5


class DeployFailed(Exception):
    """Ends a deploy as failed with this reason (shown on its page)."""


# DigitalOcean


def digitalocean_is_simulated() -> bool:
    """The API is the simulator (manage.py do_simulator) when it is served on this machine."""
    host = urlsplit(settings.DIGITALOCEAN_API_URL).hostname or ""
    return host in {"127.0.0.1", "localhost", "::1"}


def environment_client(*, environment: Environment, timeout: float = 20.0) -> Client:
    """pydo's client with the token in the environment's variable. No retries here: the job
    decides what a 429 or 500 means (and says so), and the pages never wait on retries."""
    token = os.environ.get(environment.token_variable, "")
    if not token:
        raise DeployFailed(
            f"The environment variable {environment.token_variable} (the DigitalOcean token "
            f"of {environment}) is not set."
        )
    endpoint = settings.DIGITALOCEAN_API_URL
    options = {"endpoint": endpoint, "retry_total": 0, "timeout": timeout}
    if endpoint.startswith("http://"):
        # azure-core refuses a bearer token over plain http (the simulator).
        options["authentication_policy"] = HeadersPolicy({"Authorization": f"Bearer {token}"})
    return Client(token=token, **options)


def describe_api_error(error: Exception, *, environment: Environment) -> str:
    """What went wrong talking to DigitalOcean, in words an operator acts on."""
    if isinstance(error, ClientAuthenticationError):
        return (
            f"DigitalOcean refused the token in {environment.token_variable} (401): it was "
            "revoked or mistyped."
        )
    if isinstance(error, HttpResponseError):
        status = getattr(error, "status_code", None)
        if status == 429:
            reset = ""
            response = getattr(error, "response", None)
            if response is not None and response.headers.get("ratelimit-reset"):
                reset = f" (the limit resets at {response.headers['ratelimit-reset']})"
            return f"DigitalOcean's rate limit was reached (429){reset}; try again shortly."
        if status == 409:
            return f"DigitalOcean refused: {error.message or 'conflict'} (409)."
        return f"DigitalOcean answered {status}: {error.message or error}."
    if isinstance(error, ServiceRequestError | ServiceResponseError):
        return f"DigitalOcean could not be reached at {settings.DIGITALOCEAN_API_URL}: {error}."
    return f"{type(error).__name__}: {error}"


def _not_found(answer, what: str) -> None:
    """pydo returns a 404 as a dict, not an exception."""
    if isinstance(answer, dict) and answer.get("id") == "not_found":
        raise DeployFailed(f"{what}: DigitalOcean does not know it (404).")


def deployments_list(*, environment: Environment) -> tuple[list[dict], str]:
    """The app's deployments from DigitalOcean (newest first), each with the portal's deploy
    that created it, if any; or an empty list and why."""
    try:
        answer = environment_client(environment=environment).apps.list_deployments(
            environment.live_app_id, per_page=20
        )
        _not_found(answer, f"App {environment.live_app_id}")
    except DeployFailed as failed:
        return [], str(failed)
    except Exception as error:
        return [], describe_api_error(error, environment=environment)
    deployments = answer.get("deployments") or []
    ids = [item.get("id") for item in deployments]
    ours = {
        deploy.do_deployment_id: deploy
        for deploy in Deploy.objects.filter(
            environment=environment, do_deployment_id__in=ids
        ).select_related("created_by")
    }
    for item in deployments:
        item["portal_deploy"] = ours.get(item.get("id"))
        item["steps"] = (item.get("progress") or {}).get("steps") or []
    return deployments, ""


# Gates


@dataclass(frozen=True)
class Gate:
    name: str
    passed: bool
    evidence: str
    url: str = ""

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "passed": self.passed,
            "evidence": self.evidence,
            "url": self.url,
        }


def _gate_checklist(environment: Environment, version: str) -> Gate:
    name = "Pre-deployment checklist complete for this version"
    run = (
        ChecklistRun.objects.filter(template__name__icontains="pre-deploy", label=version)
        .order_by("-created_at")
        .first()
    )
    if run is None:
        return Gate(name, False, f"No pre-deployment checklist run is labelled {version}.")
    if run.status != RunStatus.COMPLETED:
        return Gate(name, False, f"{run.title} for {version} is {run.status}.", _url(run))
    return Gate(name, True, f"{run.title} completed {run.completed_at:%Y-%m-%d %H:%M}.", _url(run))


def _url(obj) -> str:
    try:
        return obj.get_absolute_url()
    except Exception:
        return ""


def _gate_lower_environment(environment: Environment, version: str) -> Gate:
    below = (
        Environment.objects.filter(promotion_order__lt=environment.promotion_order)
        .order_by("-promotion_order")
        .first()
    )
    name = "Same version ACTIVE and healthy on the environment below"
    if below is None:
        return Gate(name, True, "No environment comes before this one.")
    latest = (
        Deploy.objects.filter(environment=below, kind=DeployKind.DEPLOY)
        .exclude(status__in=[DeployStatus.CANCELED])
        .first()
    )
    if latest is None or latest.version != version:
        shown = latest.version if latest else "nothing"
        return Gate(name, False, f"{below} last deployed {shown}, not {version}.")
    if latest.status != DeployStatus.SUCCEEDED:
        return Gate(
            name, False, f"{version} on {below} is {latest.get_status_display()}.", _url(latest)
        )
    return Gate(name, True, f"{version} ACTIVE and healthy on {below}.", _url(latest))


def _gate_incidents() -> Gate:
    name = "No open P0/P1 incident"
    open_severe = list(
        Incident.objects.filter(status__in=OPEN_STATUSES, severity__rank__lte=1).select_related(
            "severity"
        )[:3]
    )
    if open_severe:
        listed = ", ".join(f"{incident.severity.code} {incident.title}" for incident in open_severe)
        return Gate(name, False, f"Open: {listed}.", _url(open_severe[0]))
    return Gate(name, True, "None open.")


def _gate_freeze(now: datetime) -> Gate:
    name = "Not inside a change freeze or a maintenance window that forbids deploys"
    frozen = deploy_freezes(now=now)
    if not frozen:
        return Gate(name, True, "No window that forbids deploys is in progress.")
    listed = "; ".join(
        f"“{occurrence.window.title}” until "
        f"{occurrence.ends_at.astimezone(occurrence.window.tz):%Y-%m-%d %H:%M} "
        f"{occurrence.window.time_zone}"
        for occurrence in frozen
    )
    return Gate(name, False, f"In progress: {listed}.", _url(frozen[0].window))


def _gate_backup(environment: Environment, now: datetime) -> Gate:
    hours = settings.DEPLOY_BACKUP_MAX_AGE_HOURS
    name = f"A backup of {environment} finished in the last {hours} hours"
    targets = list(environment.backup_targets.all())
    if not targets:
        return Gate(name, True, "No database of this environment is backed up by the portal.")
    since = now - timedelta(hours=hours)
    for target in targets:
        recent = (
            Backup.objects.filter(target=target, status=JobStatus.SUCCEEDED, finished_at__gte=since)
            .order_by("-finished_at")
            .first()
        )
        if recent is None:
            return Gate(name, False, f"No backup of {target} since {since:%Y-%m-%d %H:%M}.")
    return Gate(name, True, f"Latest: {recent.finished_at:%Y-%m-%d %H:%M}.", _url(recent))


def deploy_gates(
    *, environment: Environment, version: str, now: datetime | None = None
) -> list[Gate]:
    """What must hold before a version goes to an environment that needs a Manager."""
    if not environment.requires_manager:
        return []
    now = now or timezone.now()
    return [
        _gate_checklist(environment, version),
        _gate_lower_environment(environment, version),
        _gate_incidents(),
        _gate_freeze(now),
        _gate_backup(environment, now),
    ]


# Starting, cancelling


def _clean_version(version: str) -> str:
    version = (version or "").strip()
    if not version:
        raise ActionRefused("Say which version this is (a tag, a commit).", field="version")
    if len(version) > 100 or any(ch.isspace() for ch in version):
        raise ActionRefused(
            "A version is one word of at most 100 characters (a tag or a commit).",
            field="version",
        )
    return version


def _may_deploy(user, environment: Environment) -> None:
    require_perm(user, "ops.start_deploy", "You may not deploy.")
    if environment.requires_manager:
        require_perm(user, "ops.deploy_production", f"Only a Manager deploys to {environment}.")


def _needs_approval(user, environment: Environment) -> bool:
    """An operator may ask for a deploy where a Manager is needed; it waits for one."""
    require_perm(user, "ops.start_deploy", "You may not deploy.")
    return environment.requires_manager and not user.has_perm("ops.deploy_production")


def _check_gates(gates: list[Gate], override_reason: str) -> list[Gate]:
    """The failed gates, allowed through only with a reason (the caller is a Manager)."""
    failed = [gate for gate in gates if not gate.passed]
    if not failed:
        return []
    if not override_reason:
        names = "; ".join(f"{gate.name}: {gate.evidence}" for gate in failed)
        raise ActionRefused(
            f"Gates not passed — {names} A Manager may override them with a reason.",
            status=409,
            field="override_reason",
        )
    if len(override_reason) < 10:
        raise ActionRefused(
            "Say why the gates are overridden (at least 10 characters).", field="override_reason"
        )
    return failed


def _enqueue(deploy: Deploy) -> None:
    transaction.on_commit(lambda: app.send_task("ops.deploy_run", args=[deploy.pk]))


def _create_live(deploy: Deploy) -> Deploy:
    """Insert the row unless the environment already has a live job: then that one is the
    answer (two clicks, two operators: one job)."""
    try:
        with transaction.atomic():
            deploy.save()
    except IntegrityError:
        live = Deploy.objects.filter(environment=deploy.environment, status__in=LIVE_DEPLOY).first()
        if live is None:
            raise
        raise ActionRefused(
            f"{live} is already under way (started by {live.created_by or 'the system'}); "
            "it is followed on its page.",
            status=409,
        ) from None
    return deploy


def deploy_start(
    *,
    environment: Environment,
    user,
    version: str,
    force_build: bool = False,
    override_reason: str = "",
    now: datetime | None = None,
) -> Deploy:
    """Queue a deploy of ``version``: the roles, then the gates (a Manager may override the
    failed ones with a reason), then one live job per environment."""
    now = now or timezone.now()
    awaiting = _needs_approval(user, environment)
    version = _clean_version(version)
    override_reason = (override_reason or "").strip()
    if awaiting and override_reason:
        raise ActionRefused(
            "Only a Manager overrides gates: your deploy waits for a Manager's approval, who "
            "sees the gates then. Leave the reason empty.",
            status=403,
            field="override_reason",
        )
    gates = deploy_gates(environment=environment, version=version, now=now)
    colour = environment.idle_colour if environment.is_blue_green else ""
    # An operator's request waits: the approving Manager sees the gates again (and may
    # override them then).
    failed = [] if awaiting else _check_gates(gates, override_reason)
    deploy = _create_live(
        Deploy(
            environment=environment,
            kind=DeployKind.DEPLOY,
            version=version,
            force_build=bool(force_build),
            app_id=environment.colour_app_id(colour) if colour else environment.app_id,
            colour=colour,
            status=DeployStatus.AWAITING_APPROVAL if awaiting else DeployStatus.QUEUED,
            gates=[gate.as_dict() for gate in gates],
            override_reason=override_reason if failed else "",
            approved_by=user if failed else None,
            created_by=user,
            created_at=now,
            simulated=digitalocean_is_simulated(),
        )
    )
    audit_record(
        actor=user,
        action="deploy.request" if awaiting else "deploy.start",
        target=deploy,
        summary=f"{version} to {environment}"
        + (f" ({colour}, idle)" if colour else "")
        + (" (force build)" if force_build else ""),
        after={"version": version, "force_build": bool(force_build)},
    )
    if failed:
        audit_record(
            actor=user,
            action="deploy.gates_override",
            target=deploy,
            summary=override_reason,
            after={"failed_gates": [gate.name for gate in failed]},
        )
    if not awaiting:
        _enqueue(deploy)
    return deploy


def deploy_approve(
    *, deploy: Deploy, user, override_reason: str = "", now: datetime | None = None
) -> Deploy:
    """A Manager approves an operator's deploy: the gates are checked again (overridable with
    a reason), and the approval is recorded before the job is queued."""
    now = now or timezone.now()
    require_perm(user, "ops.deploy_production", "Only a Manager approves deploys.")
    if deploy.status != DeployStatus.AWAITING_APPROVAL:
        raise ActionRefused("This deploy is not waiting for an approval.", status=409)
    override_reason = (override_reason or "").strip()
    gates = deploy_gates(environment=deploy.environment, version=deploy.version, now=now)
    failed = _check_gates(gates, override_reason)
    approved = Deploy.objects.filter(pk=deploy.pk, status=DeployStatus.AWAITING_APPROVAL).update(
        status=DeployStatus.QUEUED,
        approved_by=user,
        gates=[gate.as_dict() for gate in gates],
        override_reason=override_reason if failed else "",
    )
    if not approved:
        raise ActionRefused("Someone else approved or cancelled it first.", status=409)
    deploy.refresh_from_db()
    audit_record(
        actor=user,
        action="deploy.approve",
        target=deploy,
        summary=f"{deploy.version} to {deploy.environment}, asked by {deploy.created_by}",
        after={"failed_gates": [gate.name for gate in failed], "reason": override_reason},
    )
    _enqueue(deploy)
    return deploy


def deploy_rollback_start(
    *, environment: Environment, user, deployment_id: str, now: datetime | None = None
) -> Deploy:
    """Roll back to a chosen earlier deployment (validated by DigitalOcean first)."""
    now = now or timezone.now()
    _may_deploy(user, environment)
    deployment_id = (deployment_id or "").strip()
    if not deployment_id:
        raise ActionRefused("Choose the deployment to roll back to.", field="deployment_id")
    try:
        answer = environment_client(environment=environment).apps.validate_rollback(
            environment.live_app_id, {"deployment_id": deployment_id}
        )
        _not_found(answer, f"App {environment.live_app_id}")
    except DeployFailed as failed:
        raise ActionRefused(str(failed)) from None
    except Exception as error:
        raise ActionRefused(describe_api_error(error, environment=environment)) from None
    if not answer.get("valid"):
        problem = (answer.get("error") or {}).get("message") or (answer.get("error") or {}).get(
            "code", "not valid"
        )
        raise ActionRefused(f"DigitalOcean will not roll back to {deployment_id}: {problem}.")
    deploy = _create_live(
        Deploy(
            environment=environment,
            kind=DeployKind.ROLLBACK,
            version=f"rollback to {deployment_id[:8]}",
            rollback_to=deployment_id,
            app_id=environment.live_app_id,
            created_by=user,
            created_at=now,
            simulated=digitalocean_is_simulated(),
        )
    )
    audit_record(actor=user, action="deploy.rollback", target=deploy, summary=f"to {deployment_id}")
    _enqueue(deploy)
    return deploy


def deploy_cancel(*, deploy: Deploy, user, now: datetime | None = None) -> Deploy:
    """A queued deploy ends at once; a running one is cancelled at DigitalOcean by its job."""
    now = now or timezone.now()
    if not (deploy.status == DeployStatus.AWAITING_APPROVAL and user == deploy.created_by):
        _may_deploy(user, deploy.environment)
    waiting = [DeployStatus.QUEUED, DeployStatus.AWAITING_APPROVAL]
    if Deploy.objects.filter(pk=deploy.pk, status__in=waiting).update(
        status=DeployStatus.CANCELED, finished_at=now, error="Cancelled before it started."
    ):
        pass
    elif not Deploy.objects.filter(pk=deploy.pk, status=DeployStatus.RUNNING).update(
        cancel_requested=True
    ):
        raise ActionRefused("Only a queued or building deploy can be cancelled.", status=409)
    audit_record(actor=user, action="deploy.cancel", target=deploy, summary=str(deploy))
    deploy.refresh_from_db()
    return deploy


def deploy_pin_end(*, deploy: Deploy, user, commit: bool, now: datetime | None = None) -> Deploy:
    """Commit a pinned rollback (the app stays on it) or revert it (back to before)."""
    _may_deploy(user, deploy.environment)
    if not deploy.pinned:
        raise ActionRefused("This deploy does not pin the app.", status=409)
    client = environment_client(environment=deploy.environment)
    try:
        if commit:
            client.apps.commit_rollback(deploy.target_app_id)
        else:
            client.apps.revert_rollback(deploy.target_app_id)
    except Exception as error:
        raise ActionRefused(describe_api_error(error, environment=deploy.environment)) from None
    Deploy.objects.filter(pk=deploy.pk).update(pinned=False)
    _append_log(deploy, "Rollback committed." if commit else "Rollback reverted.")
    audit_record(
        actor=user,
        action="deploy.rollback_commit" if commit else "deploy.rollback_revert",
        target=deploy,
        summary=str(deploy),
    )
    deploy.refresh_from_db()
    return deploy


# The job


def _append_log(deploy: Deploy, line: str) -> None:
    stamp = timezone.now().strftime("%H:%M:%S")
    deploy.log = "\n".join([*deploy.log.splitlines(), f"{stamp} {line}"][-LOG_LINES_KEPT:])
    Deploy.objects.filter(pk=deploy.pk).update(log=deploy.log)


def _save(deploy: Deploy, **fields) -> None:
    for name, value in fields.items():
        setattr(deploy, name, value)
    Deploy.objects.filter(pk=deploy.pk).update(**fields, heartbeat_at=timezone.now())


def _claim(deploy_id: int, now: datetime) -> Deploy | None:
    """Take a queued deploy, or a live one whose worker stopped beating (killed): the
    conditional update decides who follows it."""
    stale = now - timedelta(seconds=settings.DEPLOY_STALE_SECONDS)
    claimed = Deploy.objects.filter(pk=deploy_id, status=DeployStatus.QUEUED).update(
        status=DeployStatus.RUNNING, started_at=now, heartbeat_at=now, attempts=F("attempts") + 1
    ) or Deploy.objects.filter(
        Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True),
        pk=deploy_id,
        status__in=RUNNING_DEPLOY,
    ).update(heartbeat_at=now, attempts=F("attempts") + 1)
    if not claimed:
        return None
    return Deploy.objects.select_related("environment", "created_by").get(pk=deploy_id)


def _fetch_logs(client: Client, deploy: Deploy, deployment_id: str) -> list[str]:
    """The build and deploy log lines, from the URLs DigitalOcean hands out."""
    lines = []
    for kind in ("BUILD", "DEPLOY"):
        try:
            answer = client.apps.get_logs_aggregate(deploy.target_app_id, deployment_id, type=kind)
        except Exception as error:  # logs are best effort: the phase is the truth
            logger.info("No %s log for %s: %s", kind, deployment_id, error)
            continue
        urls = (answer or {}).get("historic_urls") or []
        url = (answer or {}).get("live_url") or (urls[0] if urls else "")
        if not url.startswith(("http://", "https://")):
            continue
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - http(s) only
                text = response.read(256 * 1024).decode("utf-8", "replace")
        except (OSError, urllib.error.URLError):
            continue
        lines.extend(f"[{kind.lower()}] {line}" for line in text.splitlines() if line.strip())
    return lines


def _timed_steps(steps: list[dict]) -> list[dict]:
    """The steps with how long each took (or has been running), in seconds."""
    now = timezone.now()
    timed = []
    for step in steps:
        step = dict(step)
        started = parse_datetime(step.get("started_at") or "")
        ended = parse_datetime(step.get("ended_at") or "")
        if started is not None:
            step["seconds"] = max(0.0, ((ended or now) - started).total_seconds())
        timed.append(step)
    return timed


def _follow(client: Client, deploy: Deploy, deployment_id: str, *, allow_cancel: bool) -> str:
    """Follow a deployment until it ends; returns its last phase. Raises DeployFailed on a
    timeout or when DigitalOcean keeps failing."""
    environment = deploy.environment
    app_id = deploy.target_app_id
    transient = 0
    phase_since = time.monotonic()
    last_phase = ""
    history = [line for line in deploy.log.splitlines() if not line.startswith("[")]
    while True:
        if allow_cancel and Deploy.objects.filter(pk=deploy.pk, cancel_requested=True).exists():
            client.apps.cancel_deployment(app_id, deployment_id)
            _append_log(deploy, "Cancel requested: DigitalOcean asked to cancel.")
            allow_cancel = False
        try:
            answer = client.apps.get_deployment(app_id, deployment_id)
            _not_found(answer, f"Deployment {deployment_id}")
            transient = 0
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
            if isinstance(error, ClientAuthenticationError):
                raise
            transient += 1
            _append_log(
                deploy, f"{describe_api_error(error, environment=environment)} (will retry)"
            )
            if transient > TRANSIENT_ERRORS_ALLOWED:
                raise
            time.sleep(max(settings.DEPLOY_POLL_SECONDS, 0.05))
            continue
        deployment = answer.get("deployment") or {}
        phase = deployment.get("phase") or "UNKNOWN"
        if phase != last_phase:
            phase_since = time.monotonic()
            last_phase = phase
        steps = _timed_steps((deployment.get("progress") or {}).get("steps") or [])
        logs = _fetch_logs(client, deploy, deployment_id)
        deploy.log = "\n".join([*history, *logs][-LOG_LINES_KEPT:])
        _save(deploy, phase=phase, steps=steps, log=deploy.log)
        if phase in ENDED_PHASES:
            return phase
        timeout = settings.DEPLOY_PHASE_TIMEOUT_SECONDS
        if time.monotonic() - phase_since > timeout:
            client.apps.cancel_deployment(app_id, deployment_id)
            raise DeployFailed(
                f"Stuck in {phase} for more than {timeout} seconds; the deployment was cancelled."
            )
        time.sleep(settings.DEPLOY_POLL_SECONDS)


def _health_failures(
    client: Client, environment: Environment, app_id: str, *, traffic: bool = True
) -> list[str]:
    """What is unhealthy now: the environment's health URLs (``traffic``: they answer for the
    live app, so not while an idle colour is validated) and the app's components."""
    failures = []
    for url in environment.health_url_list() if traffic else []:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - http(s) only
                if response.status >= 400:
                    failures.append(f"{url} answered {response.status}")
        except urllib.error.HTTPError as error:
            failures.append(f"{url} answered {error.code}")
        except (OSError, urllib.error.URLError) as error:
            failures.append(f"{url} did not answer: {error}")
    try:
        answer = client.apps.get_health(app_id)
        for component in (answer.get("app_health") or {}).get("components") or []:
            if component.get("state") not in (None, "HEALTHY"):
                failures.append(
                    f"component {component.get('name')} is {component.get('state')} "
                    f"(cpu {component.get('cpu_usage_percent')}%)"
                )
    except Exception as error:
        logger.info("App health unavailable for %s: %s", environment, error)
    return failures


def _environment_services(environment: Environment) -> list:
    return list(environment.services.filter(is_active=True).prefetch_related("kpis__service"))


def _critical_kpis(services: list) -> dict[int, str]:
    """The KPIs measured on these services that are critical now: label by KPI id."""
    kpis = [kpi for service in services for kpi in service.kpis.all()]
    if not kpis:
        return {}
    return {
        value.kpi.pk: (
            f"KPI {value.kpi.name} on {value.kpi.service.name} is critical: {value.label} "
            f"({value.kpi.get_metric_display()}, critical beyond {value.kpi.critical:g}"
            + (f"; {value.source}" if value.source else "")
            + ")"
        )
        for value in kpi_values(kpis=kpis)
        if value.state == CheckState.CRITICAL
    }


def _service_failures(services: list, baseline: dict[int, str]) -> list[str]:
    """Check the environment's monitored services now (each result stored, as the scheduled
    checks' are); a critical check fails, and so does a KPI of theirs that has turned critical
    since the validation began (``baseline``: those critical before it)."""
    failures = []
    for service, outcome in run_checks(services):
        health_result_store(service=service, outcome=outcome)
        if outcome.state == CheckState.CRITICAL:
            latency = f", {outcome.latency_ms:.0f} ms" if outcome.latency_ms is not None else ""
            failures.append(
                f"check {service.name} ({service.get_kind_display()} "
                f"{describe_target(service.target)}) is critical: {outcome.detail}{latency}"
            )
    for pk, label in _critical_kpis(services).items():
        if pk not in baseline:
            failures.append(label)
    return failures


def _validate_health(client: Client, deploy: Deploy, *, traffic: bool = True) -> list[str]:
    """Watch health for the environment's validation period, at the deploy's cadence
    (DEPLOY_HEALTH_INTERVAL_SECONDS, faster than the services' own schedule): the health URLs,
    DigitalOcean's components and the environment's monitored services with their KPIs. The
    failures of the first bad look, or [] when it stayed healthy."""
    environment = deploy.environment
    services = _environment_services(environment) if traffic else []
    baseline = _critical_kpis(services)
    if baseline:
        _append_log(
            deploy,
            "Critical before the deploy (not held against it): " + "; ".join(baseline.values()),
        )
    deadline = time.monotonic() + environment.validate_seconds
    looks = 0
    while True:
        looks += 1
        failures = _health_failures(
            client, environment, deploy.target_app_id, traffic=traffic
        ) + _service_failures(services, baseline)
        if failures:
            return failures
        if time.monotonic() >= deadline:
            if services:
                _append_log(
                    deploy,
                    f"{len(services)} monitored service(s) checked {looks} time(s): all healthy.",
                )
            return []
        _save(deploy, phase="ACTIVE")
        time.sleep(min(settings.DEPLOY_HEALTH_INTERVAL_SECONDS, environment.validate_seconds))


def _roll_back(client: Client, deploy: Deploy, failures: list[str]) -> None:
    """Health failed after a deploy: back to the deployment that was ACTIVE before, committed
    once healthy, and an incident with the evidence."""
    environment = deploy.environment
    app_id = deploy.target_app_id
    target = deploy.previous_deployment_id
    _save(deploy, status=DeployStatus.ROLLING_BACK)
    _append_log(deploy, "Health failed: " + "; ".join(failures))
    if not target:
        raise DeployFailed("Health failed and there is no earlier deployment to roll back to.")
    if not deploy.rollback_deployment_id:
        answer = client.apps.validate_rollback(app_id, {"deployment_id": target})
        if not answer.get("valid"):
            raise DeployFailed(f"Health failed and DigitalOcean refuses the rollback: {answer}")
        created = client.apps.create_rollback(app_id, {"deployment_id": target})
        _not_found(created, "Rollback")
        _save(deploy, rollback_deployment_id=created["deployment"]["id"], pinned=True)
        _append_log(deploy, f"Rolling back to {target}.")
    phase = _follow(client, deploy, deploy.rollback_deployment_id, allow_cancel=False)
    if phase != "ACTIVE" or _health_failures(client, environment, app_id):
        raise DeployFailed(f"Health failed and the rollback to {target} did not come up ({phase}).")
    client.apps.commit_rollback(app_id)
    _save(deploy, pinned=False)
    _append_log(deploy, f"Rollback to {target} committed; health is back.")
    _open_incident(deploy, failures)
    _finish(deploy, DeployStatus.ROLLED_BACK, error="Health failed: " + "; ".join(failures))


def _open_incident(deploy: Deploy, failures: list[str], done: str = "") -> Incident | None:
    """Open the incident with the evidence and link it to the deploy before the deploy ends
    (a page or a test that sees the end sees the link)."""
    done = done or (
        f"Rolled back to {deploy.previous_deployment_id} (rollback deployment "
        f"{deploy.rollback_deployment_id})."
    )
    summary = (
        f"Deploy of {deploy.version} to {deploy.environment} (DigitalOcean deployment "
        f"{deploy.do_deployment_id}) failed health validation: {'; '.join(failures)}. {done}"
        f" Deploy: {deploy.get_absolute_url()}"
    )
    try:
        incident = incident_open(
            user=deploy.created_by,
            title=f"Deploy {deploy.version} to {deploy.environment} rolled back"[:200],
            severity="P1" if deploy.environment.requires_manager else "P2",
            affected_services=str(deploy.environment)[:300],
            summary=summary,
        )
    except Exception as error:
        _append_log(deploy, f"No incident opened: {error}")
        return None
    Deploy.objects.filter(pk=deploy.pk).update(incident=incident)
    deploy.incident = incident
    return incident


def _finish(deploy: Deploy, status: str, *, error: str = "") -> None:
    now = timezone.now()
    fields = {"status": status, "finished_at": now, "error": error}
    _save(deploy, **fields)
    audit_record(
        actor=None,
        action=f"deploy.{status}",
        target=deploy,
        summary=error or f"{deploy} {status}",
    )


def _begin(client: Client, deploy: Deploy) -> None:
    """Create the deployment (or the chosen rollback) and store its id before anything else."""
    environment = deploy.environment
    app_id = deploy.target_app_id
    current = client.apps.get(app_id)
    _not_found(current, f"App {app_id} of {environment}")
    previous = ((current.get("app") or {}).get("active_deployment") or {}).get("id", "")
    if deploy.kind == DeployKind.ROLLBACK:
        answer = client.apps.create_rollback(app_id, {"deployment_id": deploy.rollback_to})
    else:
        answer = client.apps.create_deployment(app_id, {"force_build": deploy.force_build})
    _not_found(answer, f"App {app_id} of {environment}")
    deployment_id = answer["deployment"]["id"]
    _save(
        deploy,
        do_deployment_id=deployment_id,
        previous_deployment_id=previous,
        pinned=deploy.kind == DeployKind.ROLLBACK,
    )
    _append_log(deploy, f"DigitalOcean deployment {deployment_id} created.")


def _root_rule(rule: dict) -> bool:
    return ((rule.get("match") or {}).get("path") or {}).get("prefix") == "/"


def _routed(app: dict) -> list[str]:
    rules = (((app.get("app") or {}).get("spec") or {}).get("ingress") or {}).get("rules")
    return [
        (rule.get("component") or {}).get("name", "") for rule in rules or [] if _root_rule(rule)
    ]


def _route_traffic(client: Client, environment: Environment, colour: str) -> None:
    """Point the router's "/" ingress rule at ``colour`` (pydo apps.update with the router's
    spec, only that rule changed), then read it back."""
    router = environment.router_app_id
    answer = client.apps.get(router)
    _not_found(answer, f"Router app {router} of {environment}")
    spec = dict((answer.get("app") or {}).get("spec") or {})
    rules = [
        {**rule, "component": {**(rule.get("component") or {}), "name": colour}}
        if _root_rule(rule)
        else rule
        for rule in (spec.get("ingress") or {}).get("rules") or []
    ]
    if not any(_root_rule(rule) for rule in rules):
        rules.append({"match": {"path": {"prefix": "/"}}, "component": {"name": colour}})
    spec["ingress"] = {**(spec.get("ingress") or {}), "rules": rules}
    _not_found(client.apps.update(router, {"spec": spec}), f"Router app {router}")
    routed = _routed(client.apps.get(router))
    if routed != [colour]:
        raise DeployFailed(f"The router still routes to {routed or 'nothing'}, not {colour}.")


def _set_live(deploy: Deploy, colour: str) -> None:
    Environment.objects.filter(pk=deploy.environment_id).update(live_colour=colour)
    deploy.environment.live_colour = colour


def _blue_green_finish(client: Client, deploy: Deploy) -> None:
    """The idle colour is ACTIVE: watch its health, then switch the traffic to it; a failure
    never switches. After the switch one look through the live URLs and services: if that
    fails, the traffic goes back to the old colour at once and an incident is opened."""
    environment = deploy.environment
    old = environment.live_colour
    failures = _validate_health(client, deploy, traffic=False)
    if failures:
        reason = "; ".join(failures)
        _append_log(deploy, f"Health failed on {deploy.colour}: {reason}")
        _finish(
            deploy,
            DeployStatus.FAILED,
            error=f"Health failed on {deploy.colour} ({reason}); traffic stays on {old}.",
        )
        return
    _route_traffic(client, environment, deploy.colour)
    _set_live(deploy, deploy.colour)
    _save(deploy, traffic_switched_at=timezone.now())
    _append_log(deploy, f"Traffic switched from {old} to {deploy.colour}.")
    audit_record(
        actor=None,
        action="deploy.traffic_switch",
        target=deploy,
        summary=f"{environment}: {old} → {deploy.colour} ({deploy.version})",
        before={"live_colour": old},
        after={"live_colour": deploy.colour},
    )
    failures = _health_failures(client, environment, deploy.target_app_id) + _service_failures(
        _environment_services(environment), {}
    )
    if not failures:
        _finish(deploy, DeployStatus.SUCCEEDED)
        return
    _route_traffic(client, environment, old)
    _set_live(deploy, old)
    _append_log(deploy, f"Unhealthy behind the traffic: switched back to {old}.")
    audit_record(
        actor=None,
        action="deploy.traffic_switch",
        target=deploy,
        summary=f"{environment}: {deploy.colour} → {old} (switched back)",
        before={"live_colour": deploy.colour},
        after={"live_colour": old},
    )
    _open_incident(
        deploy,
        failures,
        f"Traffic switched back from {deploy.colour} (app {deploy.target_app_id}) to {old}.",
    )
    _finish(
        deploy,
        DeployStatus.ROLLED_BACK,
        error="Health failed after the switch: " + "; ".join(failures),
    )


def deploy_run(*, deploy_id: int, now: datetime | None = None) -> Deploy | None:
    """The job: claim, create (once), follow, validate, roll back when health fails."""
    now = now or timezone.now()
    deploy = _claim(deploy_id, now)
    if deploy is None:
        return None
    environment = deploy.environment
    try:
        client = environment_client(environment=environment)
        if deploy.attempts > 1:
            _append_log(deploy, f"Taken over by another worker (attempt {deploy.attempts}).")
        if not deploy.do_deployment_id:
            _begin(client, deploy)
        if deploy.status == DeployStatus.ROLLING_BACK:
            _roll_back(client, deploy, ["(resumed) health had failed"])
            return deploy
        if deploy.status == DeployStatus.RUNNING:
            phase = _follow(client, deploy, deploy.do_deployment_id, allow_cancel=True)
            if phase == "CANCELED":
                _finish(deploy, DeployStatus.CANCELED, error="Cancelled at DigitalOcean.")
                return deploy
            if phase != "ACTIVE":
                failed = [s for s in deploy.steps if s.get("status") == "ERROR"]
                reason = "; ".join(
                    f"{s.get('name')}: {(s.get('reason') or {}).get('message', '')}" for s in failed
                )
                raise DeployFailed(
                    f"The deployment ended {phase}" + (f" ({reason})." if reason else ".")
                )
            _save(deploy, status=DeployStatus.VALIDATING, active_at=timezone.now())
            _append_log(deploy, f"ACTIVE; watching health for {environment.validate_seconds} s.")
        if deploy.kind == DeployKind.ROLLBACK:
            _append_log(
                deploy, "The app is pinned to this rollback until it is committed or reverted."
            )
            _finish(deploy, DeployStatus.SUCCEEDED)
            return deploy
        if deploy.colour:
            _blue_green_finish(client, deploy)
            return deploy
        failures = _validate_health(client, deploy)
        if failures:
            _roll_back(client, deploy, failures)
        else:
            _append_log(deploy, "Healthy through the validation period.")
            _finish(deploy, DeployStatus.SUCCEEDED)
    except DeployFailed as failed:
        _finish(deploy, DeployStatus.FAILED, error=str(failed))
    except Exception as error:
        logger.warning("Deploy %s failed", deploy.pk, exc_info=True)
        _finish(
            deploy, DeployStatus.FAILED, error=describe_api_error(error, environment=environment)
        )
    return deploy


def deploys_resume(
    *, now: datetime | None = None, send: Callable[[int], None] | None = None
) -> list[int]:
    """Beat: live deploys nobody follows (queued with no message after a broker outage, or a
    worker killed mid-deploy: its heartbeat is stale) are sent again."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.DEPLOY_STALE_SECONDS)
    ids = list(
        Deploy.objects.filter(status__in=[DeployStatus.QUEUED, *RUNNING_DEPLOY])
        .filter(Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True, created_at__lt=stale))
        .values_list("pk", flat=True)
    )
    for pk in ids:
        (send or (lambda value: app.send_task("ops.deploy_run", args=[value])))(pk)
    return ids
