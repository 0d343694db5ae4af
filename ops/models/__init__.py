from ops.models.checklists import (
    Cadence,
    ChecklistItem,
    ChecklistRun,
    ChecklistSection,
    ChecklistTemplate,
    ItemState,
    RunItem,
)

__all__ = [
    "Cadence",
    "ChecklistItem",
    "ChecklistRun",
    "ChecklistSection",
    "ChecklistTemplate",
    "ItemState",
    "RunItem",
]
