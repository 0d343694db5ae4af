"""Reading query-string parameters shared by list and report pages."""

from datetime import date, datetime


def parse_day(value: str, label: str, errors: list[str]) -> date | None:
    """A ``YYYY-MM-DD`` filter value, or None; a malformed one adds a message to ``errors``."""
    value = value.strip()
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        errors.append(f"{label} must be a date like 2026-11-23, not “{value}”.")
        return None
