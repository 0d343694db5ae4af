"""On-call schedules and escalation policies: created from their forms, audited."""

from django.db import transaction

from ops.models import EscalationPolicy, EscalationStep, OnCallSchedule, RotationMember
from portal.permissions import require_perm
from portal.services.audit import audit_record


@transaction.atomic
def schedule_create(*, user, schedule: OnCallSchedule, people: list) -> OnCallSchedule:
    require_perm(user, "ops.add_oncallschedule", "You may not add on-call schedules.")
    schedule.full_clean()
    schedule.save()
    RotationMember.objects.bulk_create(
        RotationMember(schedule=schedule, user=person, position=index)
        for index, person in enumerate(people)
    )
    audit_record(
        actor=user,
        action="oncall.schedule.create",
        target=schedule,
        summary=", ".join(person.get_username() for person in people),
    )
    return schedule


@transaction.atomic
def policy_create(*, user, policy: EscalationPolicy, steps: list[tuple]) -> EscalationPolicy:
    """``steps``: (after minutes, "schedule"|"user"|"channel", the row, its name)."""
    require_perm(user, "ops.add_escalationpolicy", "You may not add escalation policies.")
    policy.full_clean()
    policy.save()
    EscalationStep.objects.bulk_create(
        EscalationStep(policy=policy, position=index, after_minutes=minutes, **{kind: target})
        for index, (minutes, kind, target, _name) in enumerate(steps)
    )
    audit_record(
        actor=user,
        action="oncall.policy.create",
        target=policy,
        summary="; ".join(f"+{minutes} {kind}:{name}" for minutes, kind, _t, name in steps),
    )
    return policy
