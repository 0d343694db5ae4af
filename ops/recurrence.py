"""Recurrence as RFC 5545 RRULEs, expanded by python-dateutil in an IANA time zone.

A schedule is a rule (``FREQ=MONTHLY;BYDAY=1MO``) and a first local wall-clock time in a zone.
Occurrences are computed on the wall clock and only then placed in the zone, so "Sunday 02:00
Europe/Berlin" stays 02:00 local across daylight-saving changes. A wall-clock time that does
not exist (the spring gap) is placed with ``fold=0``, i.e. shifted forward by the gap
(02:30 becomes 03:30); an ambiguous one (the autumn overlap) is the first of the two.

The friendly picker (every N days or weeks on weekdays, monthly on a day or "first Monday",
quarterly, twice a year, yearly) is :func:`build_rule`; :func:`describe_rule` reads a rule back
into the picker's fields. No Django here: the models, forms and tests share it."""

from calendar import monthrange
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from dateutil.rrule import DAILY, HOURLY, MONTHLY, WEEKLY, YEARLY, rrule, rrulestr

WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
NTH_NAMES = {1: "first", 2: "second", 3: "third", 4: "fourth", -1: "last"}
# "Occurs more often than every hour" is refused: a maintenance schedule, not a cron job.
MIN_GAP = timedelta(hours=1)
# How many occurrences are looked at to find a gap shorter than an hour.
GAP_SAMPLE = 200

PICKER_KINDS = {
    "daily": "Every N days",
    "weekly": "Every N weeks on weekdays",
    "monthly_day": "Monthly on a day of the month",
    "monthly_nth": "Monthly on the nth weekday (e.g. first Monday)",
    "quarterly": "Quarterly on a day of the month",
    "half_yearly": "Twice a year on a day of the month",
    "yearly": "Yearly on a date",
    "custom": "Custom RRULE",
}


class RecurrenceError(ValueError):
    """A rule, zone or start that cannot make a schedule; the message says why."""


def zone(name: str) -> ZoneInfo:
    name = (name or "").strip()
    if not name or name not in _zones():
        raise RecurrenceError(f"“{name}” is not an IANA time zone (e.g. Europe/Berlin, UTC).")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RecurrenceError(f"“{name}” is not an IANA time zone.") from None


_ZONES: set[str] = set()


def _zones() -> set[str]:
    if not _ZONES:
        _ZONES.update(available_timezones())
        _ZONES.add("UTC")
    return _ZONES


def _wall(moment: datetime, tz: ZoneInfo) -> datetime:
    return moment.astimezone(tz).replace(tzinfo=None)


def _place(naive: datetime, tz: ZoneInfo) -> datetime:
    """A wall-clock time in a zone as an instant in UTC (see the module's note on DST); UTC so
    that adding a duration or subtracting two occurrences counts real hours, not wall-clock
    ones. A time in the spring gap (fold=0: the offset before the change) lands forward by
    the gap."""
    return naive.replace(tzinfo=tz, fold=0).astimezone(UTC_ZONE)


UTC_ZONE = ZoneInfo("UTC")


def parse_rule(rule: str, *, first: datetime, tz: ZoneInfo) -> rrule:
    """The dateutil rule anchored at ``first`` (aware) on the zone's wall clock."""
    text = (rule or "").strip()
    if text.upper().startswith("RRULE:"):
        text = text[6:]
    if not text:
        raise RecurrenceError("Give a recurrence rule.")
    if "\n" in text or "DTSTART" in text.upper():
        raise RecurrenceError("Give one RRULE line, without DTSTART (the start is its own field).")
    try:
        parsed = rrulestr(text, dtstart=_wall(first, tz))
    except (ValueError, TypeError) as error:
        raise RecurrenceError(f"Not a valid RRULE: {error}.") from None
    if not isinstance(parsed, rrule):
        raise RecurrenceError("Give one RRULE.")
    return parsed


def _date_possible(parsed: rrule) -> bool:
    """Whether some month of BYMONTH has some day of BYMONTHDAY (Feb 30 never comes). dateutil
    would search until the year 9999 for it, so this is decided before expanding."""
    months = parsed._bymonth or tuple(range(1, 13))
    days = tuple(parsed._bymonthday or ()) + tuple(parsed._bynmonthday or ())
    if not days:
        return True
    for month in months:
        length = monthrange(2024, month)[1]  # a leap year: Feb 29 is possible
        if any((1 <= day <= length) or (-length <= day <= -1) for day in days):
            return True
    return False


def validate_rule(rule: str, *, first: datetime, tz: ZoneInfo) -> rrule:
    """The parsed rule, or RecurrenceError: unparsable, never occurring, or more often than
    every hour."""
    parsed = parse_rule(rule, first=first, tz=tz)
    if parsed._freq not in (YEARLY, MONTHLY, WEEKLY, DAILY, HOURLY):
        raise RecurrenceError(
            "This rule repeats more often than every hour; maintenance needs at least an hour "
            "between occurrences."
        )
    if not _date_possible(parsed):
        raise RecurrenceError("This rule never occurs (no such date, e.g. 30 February).")
    sample = []
    for occurrence in parsed:
        sample.append(occurrence)
        if len(sample) >= GAP_SAMPLE:
            break
    if not sample:
        raise RecurrenceError("This rule never occurs after the start (check UNTIL and COUNT).")
    for before, after in pairwise(sample):
        if after - before < MIN_GAP:
            raise RecurrenceError(
                "This rule repeats more often than every hour "
                f"({before:%Y-%m-%d %H:%M} then {after:%H:%M}); maintenance needs at least an "
                "hour between occurrences."
            )
    return parsed


def occurrences(
    rule: str,
    *,
    first: datetime,
    tz: ZoneInfo,
    start: datetime,
    end: datetime,
    limit: int = 5000,
) -> list[datetime]:
    """Aware occurrence starts in [start, end); a one-off (empty rule) is just ``first``."""
    if not rule:
        return [first] if start <= first < end else []
    parsed = parse_rule(rule, first=first, tz=tz)
    if not _date_possible(parsed):
        return []
    # Widen by a day on the wall clock so DST shifts never drop an edge occurrence.
    low = _wall(start, tz) - timedelta(days=1)
    high = _wall(end, tz) + timedelta(days=1)
    found = []
    for naive in parsed.xafter(low, inc=True):
        if naive > high:
            break
        placed = _place(naive, tz)
        if start <= placed < end:
            found.append(placed)
            if len(found) >= limit:
                break
    return found


def next_after(rule: str, *, first: datetime, tz: ZoneInfo, after: datetime) -> datetime | None:
    """The first occurrence strictly after ``after``."""
    if not rule:
        return first if first > after else None
    parsed = parse_rule(rule, first=first, tz=tz)
    if not _date_possible(parsed):
        return None
    naive = parsed.after(_wall(after, tz) - timedelta(days=1), inc=True)
    while naive is not None:
        placed = _place(naive, tz)
        if placed > after:
            return placed
        naive = parsed.after(naive)
    return None


def next_dates(rule: str, *, first: datetime, tz: ZoneInfo, after: datetime, count: int = 5):
    """The next ``count`` occurrences after ``after`` (the picker's preview)."""
    dates = []
    moment = after
    while len(dates) < count:
        found = next_after(rule, first=first, tz=tz, after=moment)
        if found is None:
            break
        dates.append(found)
        moment = found
    return dates


@dataclass
class Picker:
    """The friendly fields of a schedule; ``kind`` is one of PICKER_KINDS."""

    kind: str = "weekly"
    interval: int = 1
    weekdays: tuple[str, ...] = ()
    month_day: int = 1
    nth: int = 1
    weekday: str = "MO"
    month: int = 1
    custom: str = ""


def build_rule(picker: Picker) -> str:
    """The RRULE the picker's fields describe; RecurrenceError names the field that is wrong."""
    if picker.kind not in PICKER_KINDS:
        raise RecurrenceError(f"Unknown kind of schedule “{picker.kind}”.")
    if picker.kind == "custom":
        return picker.custom.strip().removeprefix("RRULE:")
    if not 1 <= picker.interval <= 366:
        raise RecurrenceError("The interval must be between 1 and 366.")
    every = f";INTERVAL={picker.interval}" if picker.interval > 1 else ""
    if picker.kind == "daily":
        return f"FREQ=DAILY{every}"
    if picker.kind == "weekly":
        unknown = [day for day in picker.weekdays if day not in WEEKDAYS]
        if unknown:
            raise RecurrenceError(f"Unknown weekday {unknown[0]!r}.")
        days = ",".join(day for day in WEEKDAYS if day in picker.weekdays)
        return f"FREQ=WEEKLY{every}" + (f";BYDAY={days}" if days else "")
    if picker.kind == "monthly_nth":
        if picker.nth not in NTH_NAMES:
            raise RecurrenceError("Choose first, second, third, fourth or last.")
        if picker.weekday not in WEEKDAYS:
            raise RecurrenceError(f"Unknown weekday {picker.weekday!r}.")
        return f"FREQ=MONTHLY{every};BYDAY={picker.nth}{picker.weekday}"
    if not (1 <= picker.month_day <= 31 or picker.month_day == -1):
        raise RecurrenceError("The day of the month must be 1-31, or -1 for the last day.")
    if picker.kind == "yearly":
        if not 1 <= picker.month <= 12:
            raise RecurrenceError("The month must be 1-12.")
        return f"FREQ=YEARLY{every};BYMONTH={picker.month};BYMONTHDAY={picker.month_day}"
    months = {"monthly_day": picker.interval, "quarterly": 3, "half_yearly": 6}[picker.kind]
    interval = f";INTERVAL={months}" if months > 1 else ""
    return f"FREQ=MONTHLY{interval};BYMONTHDAY={picker.month_day}"


def describe_rule(rule: str) -> str:
    """A short human reading of a rule, for lists and the calendar."""
    if not rule:
        return "Once"
    parts = dict(part.split("=", 1) for part in rule.upper().split(";") if "=" in part)
    freq = parts.get("FREQ", "")
    interval = int(parts.get("INTERVAL", "1") or 1)
    byday = parts.get("BYDAY", "")
    monthday = parts.get("BYMONTHDAY", "")
    if freq == "DAILY":
        return "Daily" if interval == 1 else f"Every {interval} days"
    if freq == "WEEKLY":
        days = ", ".join(
            WEEKDAY_NAMES[WEEKDAYS.index(day)] for day in byday.split(",") if day in WEEKDAYS
        )
        base = "Weekly" if interval == 1 else f"Every {interval} weeks"
        return f"{base} on {days}" if days else base
    if freq == "MONTHLY":
        base = {1: "Monthly", 3: "Quarterly", 6: "Twice a year"}.get(
            interval, f"Every {interval} months"
        )
        if byday and byday[:-2].lstrip("+-").isdigit() and byday[-2:] in WEEKDAYS:
            nth = int(byday[:-2])
            day = WEEKDAY_NAMES[WEEKDAYS.index(byday[-2:])]
            return f"{base} on the {NTH_NAMES.get(nth, str(nth))} {day}"
        if monthday:
            return f"{base} on day {'last' if monthday == '-1' else monthday}"
        return base
    if freq == "YEARLY":
        base = "Yearly" if interval == 1 else f"Every {interval} years"
        if parts.get("BYMONTH") and monthday:
            return f"{base} on {parts['BYMONTH']}/{monthday}"
        return base
    if freq == "HOURLY":
        return "Hourly" if interval == 1 else f"Every {interval} hours"
    return rule
