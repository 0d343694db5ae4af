"""Reading query-string parameters shared by list and report pages."""

from datetime import date, datetime

# Dates a filter accepts: wide enough for any incident or audit entry, narrow enough that a
# day added to the end of a period, or a local midnight made aware, stays a valid datetime.
EARLIEST_DAY = date(1970, 1, 1)
LATEST_DAY = date(2999, 12, 31)

NUL = "\x00"


def parse_day(value: str, label: str, errors: list[str]) -> date | None:
    """A ``YYYY-MM-DD`` filter value, or None; a malformed one, or one outside
    EARLIEST_DAY..LATEST_DAY, adds a message to ``errors``."""
    value = value.strip()
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        errors.append(f"{label} must be a date like 2026-11-23, not “{value.replace(NUL, '')}”.")
        return None
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        errors.append(
            f"{label} must be between {EARLIEST_DAY:%Y-%m-%d} and {LATEST_DAY:%Y-%m-%d}, "
            f"not {day:%Y-%m-%d}."
        )
        return None
    return day


def nul_parameters(params) -> list[str]:
    """The names of the query-string parameters whose name or a value holds a NUL character,
    which no database column can be compared with (PostgreSQL refuses it outright)."""
    return sorted(
        {
            name.replace(NUL, "\\0")
            for name, values in params.lists()
            if NUL in name or any(NUL in value for value in values)
        }
    )
