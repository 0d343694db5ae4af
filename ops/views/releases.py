"""Environments, deploys followed live, rollbacks, backups. Thin: services do the work."""

from django.conf import settings
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling

from ops.models import Backup, BackupTarget, Deploy, Environment
from ops.selectors.releases import (
    backup_targets_overview,
    deploys_recent,
    environments_overview,
    restore_tests_recent,
)
from ops.services.backups import (
    backup_start,
    backup_verify_start,
    managed_backups_list,
    restore_test_start,
)
from ops.services.releases import (
    deploy_approve,
    deploy_cancel,
    deploy_gates,
    deploy_pin_end,
    deploy_rollback_start,
    deploy_start,
    deployments_list,
    digitalocean_is_simulated,
)
from portal.htmx import attempt, back_to, wants_fragment

DEPLOY_PAGE = "ops/releases/deploy_detail.html"
ENVIRONMENT_PAGE = "ops/releases/environment_detail.html"


def _common() -> dict:
    return {"simulated": digitalocean_is_simulated()}


@require_GET
@permission_required("ops.view_deploy", raise_exception=True)
def environment_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "ops/releases/environment_list.html",
        {**_common(), "environments": environments_overview(), "deploys": deploys_recent()},
    )


def _environment_context(request, environment: Environment, **extra) -> dict:
    deployments, deployments_error = deployments_list(environment=environment)
    version = request.GET.get("version", "").strip()
    return {
        **_common(),
        "environment": environment,
        "deployments": deployments,
        "deployments_error": deployments_error,
        "deploys": deploys_recent(environment=environment),
        "live": environment.deploys.filter(
            status__in=["queued", "running", "validating", "rolling_back"]
        ).first(),
        "gates": deploy_gates(environment=environment, version=version) if version else [],
        "version": version,
        "may_deploy": request.user.has_perm("ops.start_deploy"),
        "needs_approval": environment.requires_manager
        and not request.user.has_perm("ops.deploy_production"),
        **extra,
    }


@require_GET
@permission_required("ops.view_deploy", raise_exception=True)
def environment_detail(request: HttpRequest, slug: str) -> HttpResponse:
    environment = get_object_or_404(Environment, slug=slug)
    return render(request, ENVIRONMENT_PAGE, _environment_context(request, environment))


@require_POST
@permission_required("ops.start_deploy", raise_exception=True)
def deploy_new(request: HttpRequest, slug: str) -> HttpResponse:
    environment = get_object_or_404(Environment, slug=slug)
    deploy, refusal = attempt(
        lambda: deploy_start(
            environment=environment,
            user=request.user,
            version=request.POST.get("version", ""),
            force_build=request.POST.get("force_build") == "on",
            override_reason=request.POST.get("override_reason", ""),
        )
    )
    if refusal is None:
        if wants_fragment(request):
            return HttpResponseClientRedirect(deploy.get_absolute_url())
        return redirect(deploy.get_absolute_url(), permanent=False)
    if wants_fragment(request):
        context = _environment_context(
            request,
            environment,
            deploy_error=refusal.message,
            version=request.POST.get("version", ""),
        )
        return render(request, f"{ENVIRONMENT_PAGE}#deploy-form", context, status=refusal.status)
    return back_to(request, environment.get_absolute_url(), refusal)


@require_POST
@permission_required("ops.start_deploy", raise_exception=True)
def rollback_new(request: HttpRequest, slug: str) -> HttpResponse:
    environment = get_object_or_404(Environment, slug=slug)
    deploy, refusal = attempt(
        lambda: deploy_rollback_start(
            environment=environment,
            user=request.user,
            deployment_id=request.POST.get("deployment_id", ""),
        )
    )
    if refusal is None:
        return back_to(request, deploy.get_absolute_url(), None, done="Rollback started.")
    return back_to(request, environment.get_absolute_url(), refusal)


def _deploy_for_user(request, pk: int) -> Deploy:
    return get_object_or_404(
        Deploy.objects.select_related("environment", "created_by", "approved_by", "incident"), pk=pk
    )


def _deploy_context(request, deploy: Deploy) -> dict:
    return {
        **_common(),
        "deploy": deploy,
        "now": timezone.now(),
        "poll_seconds": settings.DEPLOY_PAGE_POLL_SECONDS,
        "may_approve": request.user.has_perm("ops.deploy_production"),
        "may_act": request.user.has_perm("ops.start_deploy")
        and (
            not deploy.environment.requires_manager
            or request.user.has_perm("ops.deploy_production")
        ),
    }


@require_GET
@permission_required("ops.view_deploy", raise_exception=True)
def deploy_detail(request: HttpRequest, pk: int) -> HttpResponse:
    deploy = _deploy_for_user(request, pk)
    context = _deploy_context(request, deploy)
    if wants_fragment(request):
        response = render(request, f"{DEPLOY_PAGE}#deploy-live", context)
        if not deploy.is_live:
            response.status_code = HttpResponseStopPolling.status_code
        return response
    return render(request, DEPLOY_PAGE, context)


@require_POST
@permission_required("ops.start_deploy", raise_exception=True)
def deploy_cancel_view(request: HttpRequest, pk: int) -> HttpResponse:
    deploy = _deploy_for_user(request, pk)
    deploy, refusal = attempt(lambda: deploy_cancel(deploy=deploy, user=request.user))
    return back_to(
        request, reverse_deploy(pk), refusal, done="Cancel requested: the job stops the deployment."
    )


@require_POST
@permission_required("ops.deploy_production", raise_exception=True)
def deploy_approve_view(request: HttpRequest, pk: int) -> HttpResponse:
    deploy = _deploy_for_user(request, pk)
    _result, refusal = attempt(
        lambda: deploy_approve(
            deploy=deploy,
            user=request.user,
            override_reason=request.POST.get("override_reason", ""),
        )
    )
    return back_to(request, reverse_deploy(pk), refusal, done="Approved: the deploy is queued.")


@require_POST
@permission_required("ops.start_deploy", raise_exception=True)
def deploy_pin_view(request: HttpRequest, pk: int) -> HttpResponse:
    deploy = _deploy_for_user(request, pk)
    commit = request.POST.get("action") == "commit"
    _result, refusal = attempt(
        lambda: deploy_pin_end(deploy=deploy, user=request.user, commit=commit)
    )
    done = "Rollback committed." if commit else "Rollback reverted."
    return back_to(request, reverse_deploy(pk), refusal, done=done)


def reverse_deploy(pk: int) -> str:
    return Deploy(pk=pk).get_absolute_url()


# Backups


@require_GET
@permission_required("ops.view_backup", raise_exception=True)
def backup_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "ops/releases/backup_list.html",
        {"targets": backup_targets_overview(now=timezone.now())},
    )


@require_GET
@permission_required("ops.view_backup", raise_exception=True)
def backup_target_detail(request: HttpRequest, slug: str) -> HttpResponse:
    target = get_object_or_404(BackupTarget, slug=slug)
    backups = target.backups.filter(pruned_at__isnull=True).prefetch_related("verifications")[:50]
    managed, managed_error = managed_backups_list(target=target)
    context = {
        **_common(),
        "target": target,
        "backups": backups,
        "managed_backups": managed,
        "managed_error": managed_error,
        "restore_tests": restore_tests_recent(target=target),
    }
    return render(request, "ops/releases/backup_target_detail.html", context)


@require_POST
@permission_required("ops.start_backup", raise_exception=True)
def restore_test_new(request: HttpRequest, slug: str) -> HttpResponse:
    """By hand, with the staging target's slug typed as the confirmation (it is overwritten)."""
    target = get_object_or_404(BackupTarget, slug=slug)
    _restore, refusal = attempt(
        lambda: restore_test_start(
            target=target, user=request.user, confirm=request.POST.get("confirm", "")
        )
    )
    return back_to(
        request, target.get_absolute_url(), refusal, done="Restore test on staging started."
    )


@require_POST
@permission_required("ops.start_backup", raise_exception=True)
def backup_new(request: HttpRequest, slug: str) -> HttpResponse:
    target = get_object_or_404(BackupTarget, slug=slug)
    backup, refusal = attempt(lambda: backup_start(target=target, user=request.user))
    if refusal is None:
        return back_to(request, backup.get_absolute_url(), None, done="Backup started.")
    return back_to(request, target.get_absolute_url(), refusal)


@require_GET
@permission_required("ops.view_backup", raise_exception=True)
def backup_detail(request: HttpRequest, pk: int) -> HttpResponse:
    backup = get_object_or_404(Backup.objects.select_related("target"), pk=pk)
    verification = backup.verifications.first()
    context = {
        "backup": backup,
        "verification": verification,
        "poll_seconds": settings.DEPLOY_PAGE_POLL_SECONDS,
    }
    live = backup.status in ("queued", "running") or (
        verification is not None and verification.status in ("queued", "running")
    )
    context["live"] = live
    if wants_fragment(request):
        response = render(request, "ops/releases/backup_detail.html#backup-live", context)
        if not live:
            response.status_code = HttpResponseStopPolling.status_code
        return response
    return render(request, "ops/releases/backup_detail.html", context)


@require_POST
@permission_required("ops.start_backup", raise_exception=True)
def backup_verify(request: HttpRequest, pk: int) -> HttpResponse:
    backup = get_object_or_404(Backup, pk=pk)
    _verification, refusal = attempt(lambda: backup_verify_start(backup=backup, user=request.user))
    return back_to(request, backup.get_absolute_url(), refusal, done="Verification started.")
