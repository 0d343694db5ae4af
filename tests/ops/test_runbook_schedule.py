"""The schedule words of runbook headings, and the periods of the cadences they give."""

import datetime
from datetime import UTC
from zoneinfo import ZoneInfo

import pytest

from ops.models import Cadence, ChecklistTemplate
from ops.runbooks.schedule import CADENCES, read_schedule

T = datetime.time


@pytest.mark.parametrize(
    ("heading", "expected"),
    [
        ("Daily checks", {"cadence": "daily"}),
        ("Nightly backups", {"cadence": "daily", "due_time": T(22, 0)}),
        ("Every weekday", {"cadence": "daily", "weekdays_only": True}),
        ("Stand-up checks (Mon-Fri 09:15)", {"cadence": "daily", "weekdays_only": True}),
        ("Bi-weekly review", {"cadence": "biweekly", "due_weekday": 0}),
        ("Fortnightly sync (Thursday)", {"cadence": "biweekly", "due_weekday": 3}),
        ("Every other week", {"cadence": "biweekly"}),
        ("Every Monday", {"cadence": "weekly", "due_weekday": 0}),
        ("Wednesdays", {"cadence": "weekly", "due_weekday": 2}),
        ("Weekly (Friday 16:00)", {"cadence": "weekly", "due_weekday": 4, "due_time": T(16)}),
        ("Monthly (on the 15th)", {"cadence": "monthly", "due_day": 15}),
        ("Monthly patching, first Monday", {"cadence": "monthly", "due_week": 1, "due_weekday": 0}),
        ("Monthly: last Friday 17:30", {"cadence": "monthly", "due_week": 5, "due_weekday": 4}),
        ("Quarterly access review", {"cadence": "quarterly"}),
        ("Twice a year: DR test", {"cadence": "semiannual"}),
        ("Semi-annual audit", {"cadence": "semiannual"}),
        ("Yearly renewal", {"cadence": "yearly"}),
        ("Annual pen test", {"cadence": "yearly"}),
        ("On demand: rollback", {"cadence": "on-demand"}),
        ("Evening check", {"cadence": "daily", "due_time": T(18)}),
        ("Midday check", {"cadence": "daily", "due_time": T(12)}),
        ("Daily end-of-shift handover", {"cadence": "daily", "due_time": T(17)}),
        ("Daily, end of day", {"cadence": "daily", "due_time": T(17)}),
        ("Daily 9 AM", {"due_time": T(9)}),
        ("Daily 08:30", {"due_time": T(8, 30)}),
        ("Daily (9:30 p.m.)", {"due_time": T(21, 30)}),
        ("Daily checks (08:00 Europe/Berlin)", {"time_zone": "Europe/Berlin"}),
        ("Daily checks 8 AM PST", {"time_zone": "America/Los_Angeles", "due_time": T(8)}),
        ("Daily (UTC+5:30)", {"time_zone": "UTC+05:30"}),
        ("Daily (UTC-3)", {"time_zone": "UTC-03:00"}),
        # A word inside another never decides: shift, daily-driver, weekday-ish.
        ("Canary traffic shift", {"cadence": "on-demand", "due_time": None}),
        ("Daily-driver laptop setup", {"cadence": "on-demand"}),
        ("Pre-deployment", {"cadence": "on-demand", "time_zone": ""}),
    ],
)
def test_heading_vocabulary(heading, expected):
    schedule = read_schedule([heading])
    assert {name: getattr(schedule, name) for name in expected} == expected
    assert schedule.warnings == []


@pytest.mark.parametrize(
    ("heading", "warning"),
    [
        ("Daily (IST)", '"IST" names more than one time zone'),
        ("Daily (Mars/Olympus_Mons)", '"Mars/Olympus_Mons" is not a known time zone'),
        ("Monthly (on the 31st)", '"on the 31st": only days 1-28 open every month'),
        ("Release at 25:00", '"25:00" is not a time of day'),
        ("Monday release", "names Monday but no cadence"),
    ],
)
def test_what_cannot_be_read_is_a_warning_not_a_guess(heading, warning):
    schedule = read_schedule([heading])
    assert any(warning in text for text in schedule.warnings), schedule.warnings
    assert schedule.time_zone == "" and schedule.due_day is None


def test_every_cadence_the_importer_reads_is_one_a_template_has():
    assert set(CADENCES) == set(Cadence.values)


def _template(**fields) -> ChecklistTemplate:
    fields.setdefault("due_time", T(9))
    return ChecklistTemplate(name="t", **fields)


def _at(text: str, zone: str = "UTC") -> datetime.datetime:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))


@pytest.mark.parametrize(
    ("fields", "moment", "start", "end"),
    [
        # Weekdays only: Friday's run lasts until Monday.
        (
            {"cadence": "daily", "weekdays_only": True},
            "2026-11-28T12:00",
            "2026-11-27",
            "2026-11-30",
        ),
        (
            {"cadence": "daily", "weekdays_only": True},
            "2026-11-30T08:00",
            "2026-11-27",
            "2026-11-30",
        ),
        (
            {"cadence": "daily", "weekdays_only": True},
            "2026-11-24T10:00",
            "2026-11-24",
            "2026-11-25",
        ),
        # Every two weeks on Friday, counted from Monday 1 January 2001: 20 Nov, 4 and 18 Dec 2026.
        ({"cadence": "biweekly", "due_weekday": 4}, "2026-12-03T10:00", "2026-11-20", "2026-12-04"),
        ({"cadence": "biweekly", "due_weekday": 4}, "2026-12-11T10:00", "2026-12-04", "2026-12-18"),
        ({"cadence": "monthly", "due_day": 15}, "2026-11-30T10:00", "2026-11-15", "2026-12-15"),
        ({"cadence": "monthly", "due_day": 15}, "2026-11-14T10:00", "2026-10-15", "2026-11-15"),
        # First Monday: 2 Nov and 7 Dec 2026; last Friday: 27 Nov, 25 Dec.
        (
            {"cadence": "monthly", "due_week": 1, "due_weekday": 0},
            "2026-11-30T10:00",
            "2026-11-02",
            "2026-12-07",
        ),
        (
            {"cadence": "monthly", "due_week": 5, "due_weekday": 4},
            "2026-12-01T10:00",
            "2026-11-27",
            "2026-12-25",
        ),
        ({"cadence": "semiannual"}, "2026-11-30T10:00", "2026-07-01", "2027-01-01"),
        ({"cadence": "yearly", "due_day": 10}, "2026-01-09T10:00", "2025-01-10", "2026-01-10"),
    ],
)
def test_periods_of_the_new_cadences(settings, fields, moment, start, end):
    settings.TIME_ZONE = "UTC"
    opened, closes = _template(**fields).period_at(_at(moment))
    assert (opened.date().isoformat(), closes.date().isoformat()) == (start, end)
    assert opened.time() == T(9)


def test_a_template_time_zone_moves_its_opening(settings):
    settings.TIME_ZONE = "UTC"
    berlin = _template(cadence="daily", due_time=T(8), time_zone="Europe/Berlin")
    start, _end = berlin.period_at(datetime.datetime(2026, 11, 30, 7, 30, tzinfo=UTC))
    assert start == datetime.datetime(2026, 11, 30, 7, 0, tzinfo=UTC)  # 08:00 CET
    offset = _template(cadence="daily", due_time=T(8), time_zone="UTC+05:30")
    start, _end = offset.period_at(datetime.datetime(2026, 11, 30, 3, 0, tzinfo=UTC))
    assert start == datetime.datetime(2026, 11, 30, 2, 30, tzinfo=UTC)
    assert offset.schedule_label() == "Daily at 08:00 UTC+05:30"


@pytest.mark.parametrize(
    ("fields", "label"),
    [
        ({"cadence": "daily", "weekdays_only": True}, "Weekdays at 09:00"),
        ({"cadence": "biweekly", "due_weekday": 4}, "Every other Friday at 09:00"),
        (
            {"cadence": "monthly", "due_week": 1, "due_weekday": 0},
            "Monthly on the first Monday at 09:00",
        ),
        ({"cadence": "yearly", "due_day": 3}, "Yearly in January on day 3 at 09:00"),
    ],
)
def test_schedule_labels(fields, label):
    assert _template(**fields).schedule_label() == label
