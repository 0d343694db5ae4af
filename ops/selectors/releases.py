"""Reads for the deploy and backup pages, Today and /metrics."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Prefetch

from ops.models import Backup, BackupTarget, Deploy, Environment, JobStatus, RestoreTest
from ops.models.releases import LIVE_DEPLOY
from portal import formatting


def deploys_recent(*, environment: Environment | None = None, limit: int = 20) -> list[Deploy]:
    deploys = Deploy.objects.select_related("environment", "created_by", "incident")
    if environment is not None:
        deploys = deploys.filter(environment=environment)
    return list(deploys[:limit])


def deploys_live() -> list[Deploy]:
    return list(
        Deploy.objects.filter(status__in=LIVE_DEPLOY).select_related("environment", "created_by")
    )


def environments_overview() -> list[Environment]:
    """Each environment with its live deploy (if any) and latest finished one."""
    environments = list(Environment.objects.all())
    latest: dict[int, Deploy] = {}
    live: dict[int, Deploy] = {}
    for deploy in (
        Deploy.objects.filter(environment__in=environments)
        .select_related("created_by")
        .order_by("-created_at")[:200]
    ):
        if deploy.is_live:
            live.setdefault(deploy.environment_id, deploy)
        else:
            latest.setdefault(deploy.environment_id, deploy)
    for environment in environments:
        environment.live_deploy = live.get(environment.pk)
        environment.latest_deploy = latest.get(environment.pk)
    return environments


@dataclass(frozen=True)
class TargetState:
    target: BackupTarget
    latest: Backup | None
    latest_verified: Backup | None
    problem: str  # "" when all is well


def backup_targets_overview(*, now: datetime) -> list[TargetState]:
    """Each target with its newest backup and newest verified one, and what is wrong: no
    backup yet, the newest failed, or the newest good one is older than the target allows."""
    backups = Backup.objects.filter(pruned_at__isnull=True).order_by("-created_at")
    targets = BackupTarget.objects.prefetch_related(
        Prefetch("backups", queryset=backups, to_attr="recent")
    )
    states = []
    for target in targets:
        recent = target.recent[:50]
        latest = recent[0] if recent else None
        good = next((b for b in recent if b.status == JobStatus.SUCCEEDED), None)
        verified = next((b for b in recent if b.verified_at), None)
        problem = ""
        if latest is None:
            problem = "No backup has been taken."
        elif latest.status == JobStatus.FAILED:
            problem = f"The latest backup failed: {latest.error[:200]}"
        elif good is None or good.finished_at < now - timedelta(hours=target.max_age_hours):
            problem = f"No backup finished in the last {target.max_age_hours} hours."
        states.append(TargetState(target, latest, verified, problem))
    return states


def backup_age_hours(*, verified: bool, now: datetime) -> tuple[float | None, str]:
    """Hours since the newest good (or verified) backup of the worst target, and which one;
    None when there are no targets or one has none at all (said in the source)."""
    worst, worst_name = None, ""
    for target in BackupTarget.objects.all():
        backups = target.backups.filter(status=JobStatus.SUCCEEDED, pruned_at__isnull=True)
        field = "verified_at" if verified else "finished_at"
        newest = backups.exclude(**{f"{field}__isnull": True}).order_by(f"-{field}").first()
        if newest is None:
            kind = "verified backup" if verified else "backup"
            return None, f"{target.name} has no {kind} yet"
        hours = round((now - getattr(newest, field)).total_seconds() / 3600, 1)
        if worst is None or hours > worst:
            worst, worst_name = hours, target.name
    if worst is None:
        return None, "no backup targets"
    return worst, f"{worst_name} (portal backups)"


def restore_tests_recent(*, target: BackupTarget, limit: int = 10) -> list[RestoreTest]:
    return list(target.restore_tests.select_related("destination", "backup", "created_by")[:limit])


def restore_test_age_days(*, now: datetime) -> tuple[float | None, str]:
    """Days since the last good restore test on staging of the worst target that has a
    restore-test database, with its measured recovery time; None when one has none yet."""
    worst, source = None, ""
    for target in BackupTarget.objects.filter(restore_test_target__isnull=False):
        latest = (
            RestoreTest.objects.filter(source=target, status=JobStatus.SUCCEEDED)
            .select_related("destination")
            .order_by("-finished_at")
            .first()
        )
        if latest is None:
            return None, f"{target.name} has no restore test on staging yet"
        days = round((now - latest.finished_at).total_seconds() / 86400, 1)
        if worst is None or days > worst:
            worst = days
            source = (
                f"{target.name} into {latest.destination.name}: "
                f"recovered in {formatting.seconds(latest.restore_seconds)} "
                "(runbook target 15–30 minutes)"
            )
    if worst is None:
        return None, "no restore-test database configured"
    return worst, source
