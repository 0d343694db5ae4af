"""The schedule a runbook heading states: cadence, weekday or day, time of day and time zone.

Plain Python with no Django import. Words are read whole: a word inside another ("shift",
"daily-driver", "weekday" in "weekdays-only-mode") never decides anything. What looks like a
schedule but cannot be read is returned as a warning, never guessed.

    Daily checks (08:30 Europe/Berlin)      daily at 08:30 in Europe/Berlin
    Nightly / Every weekday                 daily (at 22:00) / Monday to Friday
    Weekly (Friday 16:00)                   weekly, Fridays at 16:00
    Every Monday, Mondays                   weekly on Monday
    Bi-weekly / Fortnightly                 every two weeks
    Monthly (on the 15th)                   monthly on day 15
    Monthly, first Monday                   monthly on the first Monday
    Quarterly, Twice a year, Yearly/Annual  every 3, 6 or 12 months
    Evening / Midday / End of day           18:00 / 12:00 / 17:00
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

DAILY = "daily"
WEEKLY = "weekly"
BIWEEKLY = "biweekly"
MONTHLY = "monthly"
QUARTERLY = "quarterly"
SEMIANNUAL = "semiannual"
YEARLY = "yearly"
ON_DEMAND = "on-demand"
CADENCES = (DAILY, WEEKLY, BIWEEKLY, MONTHLY, QUARTERLY, SEMIANNUAL, YEARLY, ON_DEMAND)

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
LAST_WEEK = 5  # "last Friday of the month"
_ORDINAL_WEEKS = {
    "first": 1,
    "1st": 1,
    "second": 2,
    "2nd": 2,
    "third": 3,
    "3rd": 3,
    "fourth": 4,
    "4th": 4,
    "last": LAST_WEEK,
}
MAX_DUE_DAY = 28  # every month has it

# Phrases are sequences of whole words (hyphenated words are one word: "bi-weekly").
_CADENCE_PHRASES: list[tuple[tuple[str, ...], str]] = [
    (("every", "weekday"), DAILY),
    (("every", "working", "day"), DAILY),
    (("weekdays",), DAILY),
    (("monday-friday",), DAILY),
    (("mon-fri",), DAILY),
    (("monday", "to", "friday"), DAILY),
    (("daily",), DAILY),
    (("nightly",), DAILY),
    (("every", "day"), DAILY),
    (("each", "day"), DAILY),
    (("every", "night"), DAILY),
    (("morning",), DAILY),
    (("midday",), DAILY),
    (("evening",), DAILY),
    (("bi-weekly",), BIWEEKLY),
    (("biweekly",), BIWEEKLY),
    (("fortnightly",), BIWEEKLY),
    (("every", "two", "weeks"), BIWEEKLY),
    (("every", "2", "weeks"), BIWEEKLY),
    (("every", "other", "week"), BIWEEKLY),
    (("weekly",), WEEKLY),
    (("every", "week"), WEEKLY),
    (("each", "week"), WEEKLY),
    (("monthly",), MONTHLY),
    (("every", "month"), MONTHLY),
    (("each", "month"), MONTHLY),
    (("quarterly",), QUARTERLY),
    (("every", "quarter"), QUARTERLY),
    (("every", "three", "months"), QUARTERLY),
    (("every", "3", "months"), QUARTERLY),
    (("twice", "a", "year"), SEMIANNUAL),
    (("semi-annual",), SEMIANNUAL),
    (("semi-annually",), SEMIANNUAL),
    (("semiannual",), SEMIANNUAL),
    (("half-yearly",), SEMIANNUAL),
    (("every", "six", "months"), SEMIANNUAL),
    (("every", "6", "months"), SEMIANNUAL),
    (("yearly",), YEARLY),
    (("annual",), YEARLY),
    (("annually",), YEARLY),
    (("every", "year"), YEARLY),
    (("once", "a", "year"), YEARLY),
    (("on", "demand"), ON_DEMAND),
    (("on-demand",), ON_DEMAND),
    (("ad", "hoc"), ON_DEMAND),
    (("ad-hoc",), ON_DEMAND),
    (("as", "needed"), ON_DEMAND),
]
_WEEKDAYS_ONLY = {
    ("every", "weekday"),
    ("every", "working", "day"),
    ("weekdays",),
    ("monday-friday",),
    ("mon-fri",),
    ("monday", "to", "friday"),
}
_TIME_WORDS: list[tuple[tuple[str, ...], datetime.time]] = [
    (("end", "of", "day"), datetime.time(17, 0)),
    (("end-of-day",), datetime.time(17, 0)),
    (("eod",), datetime.time(17, 0)),
    (("end", "of", "shift"), datetime.time(17, 0)),
    (("end-of-shift",), datetime.time(17, 0)),
    (("morning",), datetime.time(9, 0)),
    (("midday",), datetime.time(12, 0)),
    (("noon",), datetime.time(12, 0)),
    (("lunchtime",), datetime.time(12, 0)),
    (("afternoon",), datetime.time(15, 0)),
    (("evening",), datetime.time(18, 0)),
    (("nightly",), datetime.time(22, 0)),
    (("night",), datetime.time(22, 0)),
    (("midnight",), datetime.time(0, 0)),
]
# Abbreviations that name one zone; the others (IST, CST in Asia, BST...) are warned about.
_ZONE_ABBREVIATIONS = {
    "UTC": "UTC",
    "GMT": "UTC",
    "PST": "America/Los_Angeles",
    "PDT": "America/Los_Angeles",
    "MST": "America/Denver",
    "MDT": "America/Denver",
    "CST": "America/Chicago",
    "CDT": "America/Chicago",
    "EST": "America/New_York",
    "EDT": "America/New_York",
    "CET": "Europe/Paris",
    "CEST": "Europe/Paris",
    "EET": "Europe/Athens",
    "EEST": "Europe/Athens",
    "WET": "Europe/Lisbon",
    "JST": "Asia/Tokyo",
    "KST": "Asia/Seoul",
    "AEST": "Australia/Sydney",
    "AEDT": "Australia/Sydney",
    "NZST": "Pacific/Auckland",
    "NZDT": "Pacific/Auckland",
}
_AMBIGUOUS_ZONES = {"IST", "BST", "AST", "SST", "CAT"}

_WORD_RE = re.compile(r"[A-Za-z0-9]+(?:[-'][A-Za-z0-9]+)*")
_TIME_12H_RE = re.compile(
    r"(?<![\w:.])(1[0-2]|0?[1-9])(?::([0-5]\d))?\s*([ap])\.?\s*m\b\.?", re.IGNORECASE
)
_TIME_24H_RE = re.compile(r"(?<![\w:.])([01]?\d|2[0-3])[:h.]([0-5]\d)(?![\w:])")
_BAD_TIME_RE = re.compile(r"(?<![\w:.])(\d{1,2}):(\d{2})(?![\w:])")
_ZONE_NAME_RE = re.compile(r"\b([A-Z][A-Za-z_]+(?:/[A-Z][A-Za-z_+-]+){1,2})\b")
_OFFSET_RE = re.compile(r"\b(?:UTC|GMT)\s*([+\u2212-])\s*(\d{1,2})(?::?([0-5]\d))?\b")
_ABBREVIATION_RE = re.compile(r"(?<![\w/])([A-Z]{1,5})(?![\w/])")
_DAY_OF_MONTH_RE = re.compile(
    r"\b(?:on\s+the\s+|day\s+)(\d{1,2})(?:st|nd|rd|th)?\b|\b(\d{1,2})(?:st|nd|rd|th)\b",
    re.IGNORECASE,
)
_ESTIMATE_RE = re.compile(
    r"\(\s*(?:~|about\s+|approx\.?\s+)?(?:\d+(?:\.\d+)?\s*[-\u2013]\s*)?"
    r"(\d+(?:\.\d+)?)\s*(minutes?|mins?|m|hours?|hrs?|h)\s*\)",
    re.IGNORECASE,
)
# What a key leaves out of a heading, so retiming or rezoning a checklist keeps its identity.
_SCHEDULE_NOISE_RES = (_ESTIMATE_RE, _TIME_12H_RE, _TIME_24H_RE, _OFFSET_RE, _ZONE_NAME_RE)


@dataclass
class Schedule:
    cadence: str = ON_DEMAND
    weekdays_only: bool = False
    due_time: datetime.time | None = None
    due_weekday: int | None = None  # 0 = Monday
    due_day: int | None = None  # 1-28
    due_week: int | None = None  # 1-4, or LAST_WEEK: the nth due_weekday of the month
    time_zone: str = ""  # an IANA name or "UTC+05:30"; empty: the portal's zone
    estimated_minutes: int | None = None
    warnings: list[str] = field(default_factory=list)


def read_schedule(headings_nearest_first: list[str]) -> Schedule:
    """The schedule of a checklist from its heading, then its parents' (nearest first) for the
    cadence and the estimate. The time, weekday, day and zone are read from the heading that
    gave the cadence, or the checklist's own."""
    schedule = Schedule()
    own = headings_nearest_first[0] if headings_nearest_first else ""
    source = own
    for heading in headings_nearest_first:
        cadence = _cadence_in(_words(heading))
        if cadence is not None:
            schedule.cadence, schedule.weekdays_only = cadence
            source = heading
            break
    texts = [own] if source == own else [own, source]
    for text in texts:
        _read_details(text, schedule)
    schedule.estimated_minutes = _find_estimate(headings_nearest_first)
    if schedule.cadence in (WEEKLY, BIWEEKLY) and schedule.due_weekday is None:
        schedule.due_weekday = 0
    return schedule


def key_text(heading: str) -> str:
    """A heading without the parts that only say when: "Daily checks (08:00 UTC)" and "Daily
    checks (08:30)" are the same checklist."""
    for pattern in _SCHEDULE_NOISE_RES:
        heading = pattern.sub(" ", heading)
    words = [word for word in _words(heading) if word.upper() not in _ZONE_ABBREVIATIONS]
    return " ".join(words)


def zone_from_name(name: str) -> datetime.tzinfo:
    """The tzinfo of a stored zone: an IANA name or a fixed "UTC+05:30"."""
    if match := re.fullmatch(r"UTC([+-])(\d\d):(\d\d)", name):
        sign = -1 if match.group(1) == "-" else 1
        delta = datetime.timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))
        return datetime.timezone(sign * delta, name)
    return ZoneInfo(name)


def is_valid_zone(name: str) -> bool:
    try:
        zone_from_name(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _words(text: str) -> list[str]:
    return [word.lower() for word in _WORD_RE.findall(text)]


def _find_phrase(words: list[str], phrase: tuple[str, ...]) -> int | None:
    if phrase[0] not in words:
        return None
    size = len(phrase)
    for start in range(len(words) - size + 1):
        if tuple(words[start : start + size]) == phrase:
            return start
    return None


def _cadence_in(words: list[str]) -> tuple[str, bool] | None:
    """The leftmost cadence phrase of a heading; "every Monday" and "Mondays" are weekly."""
    found: list[tuple[int, int, str, bool]] = []
    for phrase, cadence in _CADENCE_PHRASES:
        if (start := _find_phrase(words, phrase)) is not None:
            found.append((start, -len(phrase), cadence, phrase in _WEEKDAYS_ONLY))
    for day in WEEKDAYS:
        for phrase in (("every", day), ("each", day), (day + "s",)):
            if (start := _find_phrase(words, phrase)) is not None:
                found.append((start, -len(phrase), WEEKLY, False))
    if not found:
        return None
    _start, _length, cadence, weekdays_only = min(found)
    # "Monthly, first Monday" names a weekday without being weekly.
    if cadence == WEEKLY and any(
        _find_phrase(words, (ordinal, day)) is not None
        for ordinal in _ORDINAL_WEEKS
        for day in WEEKDAYS
    ):
        monthly = _find_phrase(words, ("monthly",))
        if monthly is not None:
            return MONTHLY, False
    return cadence, weekdays_only


def _read_details(heading: str, schedule: Schedule) -> None:
    words = _words(heading)
    if schedule.due_time is None:
        schedule.due_time = _read_time(heading, words, schedule.warnings)
    if schedule.due_weekday is None:
        for ordinal, week in _ORDINAL_WEEKS.items():
            for number, day in enumerate(WEEKDAYS):
                if _find_phrase(words, (ordinal, day)) is not None:
                    schedule.due_week, schedule.due_weekday = week, number
        if schedule.due_weekday is None:
            for number, day in enumerate(WEEKDAYS):
                if day in words or day + "s" in words:
                    schedule.due_weekday = number
                    break
    day_match = _DAY_OF_MONTH_RE.search(heading)
    if schedule.due_day is None and schedule.due_week is None and (match := day_match):
        day = int(match.group(1) or match.group(2))
        if 1 <= day <= MAX_DUE_DAY:
            schedule.due_day = day
        else:
            schedule.warnings.append(
                f'"{match.group(0)}": only days 1-{MAX_DUE_DAY} open every month; day not set'
            )
    if not schedule.time_zone:
        schedule.time_zone = _read_zone(heading, schedule.warnings)
    if schedule.due_weekday is not None and schedule.cadence in (DAILY, ON_DEMAND):
        if schedule.cadence == ON_DEMAND:
            schedule.warnings.append(
                f"names {WEEKDAYS[schedule.due_weekday].title()} but no cadence "
                '("every Monday", "weekly"); on demand'
            )
        schedule.due_weekday = schedule.due_week = None


def _read_time(heading: str, words: list[str], warnings: list[str]) -> datetime.time | None:
    if match := _TIME_12H_RE.search(heading):
        afternoon = match.group(3).lower() == "p"
        hour = int(match.group(1)) % 12 + (12 if afternoon else 0)
        return datetime.time(hour, int(match.group(2) or 0))
    if match := _TIME_24H_RE.search(heading):
        return datetime.time(int(match.group(1)), int(match.group(2)))
    if match := _BAD_TIME_RE.search(heading):
        warnings.append(f'"{match.group(0)}" is not a time of day; due time not set')
        return None
    found = [
        (start, value)
        for phrase, value in _TIME_WORDS
        if (start := _find_phrase(words, phrase)) is not None
    ]
    return min(found, key=lambda pair: pair[0])[1] if found else None


def _read_zone(heading: str, warnings: list[str]) -> str:
    if match := _OFFSET_RE.search(heading):
        sign = "-" if match.group(1) in "-\u2212" else "+"
        hours, minutes = int(match.group(2)), int(match.group(3) or 0)
        if hours > 14:
            warnings.append(f'"{match.group(0)}" is not a UTC offset; time zone not set')
            return ""
        return f"UTC{sign}{hours:02}:{minutes:02}"
    for match in _ZONE_NAME_RE.finditer(heading):
        name = match.group(1)
        if name in _known_zones():
            return name
        warnings.append(f'"{name}" is not a known time zone; the portal\'s zone applies')
        return ""
    for match in _ABBREVIATION_RE.finditer(heading):
        abbreviation = match.group(1)
        if abbreviation in _ZONE_ABBREVIATIONS:
            return _ZONE_ABBREVIATIONS[abbreviation]
        if abbreviation in _AMBIGUOUS_ZONES:
            warnings.append(
                f'"{abbreviation}" names more than one time zone; write an IANA name '
                '("Asia/Kolkata") or an offset ("UTC+05:30"); the portal\'s zone applies'
            )
            return ""
    return ""


_ZONES: set[str] = set()


def _known_zones() -> set[str]:
    if not _ZONES:
        _ZONES.update(available_timezones())
    return _ZONES


def _find_estimate(headings_nearest_first: list[str]) -> int | None:
    """Minutes of the nearest "(N minutes)" or "(N hours)"; a range counts as its upper end."""
    for heading in headings_nearest_first:
        if match := _ESTIMATE_RE.search(heading):
            amount, unit = float(match.group(1)), match.group(2).lower()
            return round(amount * 60 if unit.startswith("h") else amount)
    return None
