from ops.models.checklists import (
    Cadence,
    ChecklistItem,
    ChecklistRun,
    ChecklistSection,
    ChecklistTemplate,
    ItemState,
    RunItem,
)
from ops.models.incidents import (
    ActionItem,
    Incident,
    IncidentNotification,
    IncidentStatus,
    NotificationStep,
    Postmortem,
    Severity,
    TimelineEntry,
    TimelineKind,
)

__all__ = [
    "ActionItem",
    "Cadence",
    "ChecklistItem",
    "ChecklistRun",
    "ChecklistSection",
    "ChecklistTemplate",
    "Incident",
    "IncidentNotification",
    "IncidentStatus",
    "ItemState",
    "NotificationStep",
    "Postmortem",
    "RunItem",
    "Severity",
    "TimelineEntry",
    "TimelineKind",
]
