"""Recurrence with a controlled clock: DST changes in Europe/Berlin and America/New_York
(spring and autumn) and month ends (the 31st, first Monday, Feb 29)."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ops import recurrence
from ops.recurrence import Picker, RecurrenceError, build_rule, next_dates, validate_rule

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def _local(moments, tz):
    return [moment.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z") for moment in moments]


def test_weekly_berlin_keeps_the_wall_clock_across_spring_and_autumn():
    first = datetime(2026, 3, 22, 2, 0, tzinfo=BERLIN)  # a Sunday, CET
    dates = next_dates(
        "FREQ=WEEKLY;BYDAY=SU", first=first, tz=BERLIN, after=first - timedelta(seconds=1)
    )
    # 29 March 2026 02:00 does not exist in Berlin (clocks jump 02:00 -> 03:00).
    assert _local(dates, BERLIN) == [
        "2026-03-22 02:00 CET",
        "2026-03-29 03:00 CEST",
        "2026-04-05 02:00 CEST",
        "2026-04-12 02:00 CEST",
        "2026-04-19 02:00 CEST",
    ]
    autumn = datetime(2026, 10, 18, 2, 30, tzinfo=BERLIN)
    dates = next_dates(
        "FREQ=WEEKLY;BYDAY=SU",
        first=autumn,
        tz=BERLIN,
        after=autumn - timedelta(seconds=1),
        count=3,
    )
    # 25 October 02:30 happens twice: the first (summer time) is the occurrence.
    assert _local(dates, BERLIN) == [
        "2026-10-18 02:30 CEST",
        "2026-10-25 02:30 CEST",
        "2026-11-01 02:30 CET",
    ]
    assert dates[1] - dates[0] == timedelta(days=7)
    assert dates[2] - dates[1] == timedelta(days=7, hours=1)


def test_daily_new_york_across_spring_and_autumn():
    first = datetime(2026, 3, 7, 2, 30, tzinfo=NEW_YORK)
    dates = next_dates("FREQ=DAILY", first=first, tz=NEW_YORK, after=first, count=2)
    # 8 March 2026 02:30 does not exist in New York: it becomes 03:30 EDT.
    assert _local(dates, NEW_YORK) == ["2026-03-08 03:30 EDT", "2026-03-09 02:30 EDT"]
    autumn = datetime(2026, 10, 31, 1, 30, tzinfo=NEW_YORK)
    dates = next_dates("FREQ=DAILY", first=autumn, tz=NEW_YORK, after=autumn, count=2)
    assert _local(dates, NEW_YORK) == ["2026-11-01 01:30 EDT", "2026-11-02 01:30 EST"]
    assert dates[1] - dates[0] == timedelta(hours=25)


def test_month_ends_the_31st_first_monday_and_feb_29():
    utc = ZoneInfo("UTC")
    first = datetime(2026, 1, 31, 9, 0, tzinfo=UTC)
    dates = next_dates("FREQ=MONTHLY;BYMONTHDAY=31", first=first, tz=utc, after=first)
    # Only months that have a 31st.
    assert [d.date().isoformat() for d in dates] == [
        "2026-03-31",
        "2026-05-31",
        "2026-07-31",
        "2026-08-31",
        "2026-10-31",
    ]
    last = next_dates("FREQ=MONTHLY;BYMONTHDAY=-1", first=first, tz=utc, after=first, count=2)
    assert [d.date().isoformat() for d in last] == ["2026-02-28", "2026-03-31"]
    monday = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
    rule = build_rule(Picker(kind="monthly_nth", nth=1, weekday="MO"))
    assert rule == "FREQ=MONTHLY;BYDAY=1MO"
    dates = next_dates(rule, first=monday, tz=utc, after=monday, count=3)
    assert [d.date().isoformat() for d in dates] == ["2026-02-02", "2026-03-02", "2026-04-06"]
    leap = datetime(2024, 2, 29, 9, 0, tzinfo=UTC)
    rule = build_rule(Picker(kind="yearly", month=2, month_day=29))
    dates = next_dates(rule, first=leap, tz=utc, after=leap, count=2)
    assert [d.date().isoformat() for d in dates] == ["2028-02-29", "2032-02-29"]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "never occurs"),
        ("FREQ=DAILY;BYMONTH=4;BYMONTHDAY=31", "never occurs"),
        ("FREQ=DAILY;UNTIL=20200101T000000", "never occurs"),
        ("FREQ=MINUTELY;INTERVAL=30", "more often than every hour"),
        ("FREQ=HOURLY;BYMINUTE=0,30", "more often than every hour"),
        ("FREQ=SOMETIMES", "Not a valid RRULE"),
        ("", "Give a recurrence rule"),
    ],
)
def test_rules_that_cannot_make_a_schedule_are_refused(rule, message):
    first = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    with pytest.raises(RecurrenceError, match=message):
        validate_rule(rule, first=first, tz=ZoneInfo("UTC"))


def test_unknown_time_zone_is_refused():
    with pytest.raises(RecurrenceError, match="not an IANA time zone"):
        recurrence.zone("Mars/Olympus_Mons")


def test_picker_rules_read_back():
    assert build_rule(Picker(kind="weekly", interval=2, weekdays=("FR", "MO"))) == (
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,FR"
    )
    assert build_rule(Picker(kind="quarterly", month_day=15)) == (
        "FREQ=MONTHLY;INTERVAL=3;BYMONTHDAY=15"
    )
    assert recurrence.describe_rule("FREQ=MONTHLY;BYDAY=1MO") == "Monthly on the first Monday"
    assert recurrence.describe_rule("FREQ=MONTHLY;INTERVAL=6;BYMONTHDAY=1") == (
        "Twice a year on day 1"
    )
