from ops.models.checklists import (
    Cadence,
    ChecklistItem,
    ChecklistRun,
    ChecklistSection,
    ChecklistTemplate,
    ItemState,
    RunItem,
)
from ops.models.health import (
    CheckResult,
    CheckRollup,
    CheckState,
    Kpi,
    KpiMetric,
    MonitoredService,
    ServiceKind,
)

__all__ = [
    "Cadence",
    "CheckResult",
    "CheckRollup",
    "CheckState",
    "ChecklistItem",
    "ChecklistRun",
    "ChecklistSection",
    "ChecklistTemplate",
    "ItemState",
    "Kpi",
    "KpiMetric",
    "MonitoredService",
    "RunItem",
    "ServiceKind",
]
