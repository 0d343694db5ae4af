"""The report's medians and P90s: PostgreSQL's percentile_cont and the Python path give the
same figures on random incidents, and both equal the textbook definition (linear
interpolation between the nearest ranks, as ``statistics.quantiles(method="inclusive")``)."""

import statistics
from collections import defaultdict
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ops.models import Incident
from ops.selectors.incidents import (
    _figures_in_database,
    _figures_in_python,
    _months,
    incident_report,
    percentile,
    severities_all,
)
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

SINCE, UNTIL = date(2026, 1, 1), date(2026, 3, 31)
NOW = datetime(2026, 3, 20, 12, tzinfo=timezone.get_fixed_timezone(0))
SEVERITY_CODES = ["P0", "P1", "P2", "P3"]
EXAMPLES = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

seconds = st.integers(min_value=0, max_value=3 * 86400)
incidents = st.lists(
    st.tuples(
        st.sampled_from(SEVERITY_CODES),
        st.integers(min_value=-2 * 24 * 60, max_value=92 * 24 * 60),  # minutes after SINCE
        st.none() | seconds,  # to acknowledge
        st.none() | seconds,  # to resolve
        st.booleans(),  # acknowledgement corrected
    ),
    max_size=40,
)


def _reference(values: list[float], share: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    if share == 0.5:
        return statistics.median(values)
    return statistics.quantiles(values, n=10, method="inclusive")[int(share * 10) - 1]


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def _store(rows, severities) -> None:
    Incident.objects.all().delete()
    zone = timezone.get_current_timezone()
    start = datetime(SINCE.year, SINCE.month, SINCE.day, tzinfo=zone)
    created = []
    for code, minutes, to_ack, to_res, corrected in rows:
        severity = severities[code]
        started = start + timedelta(minutes=minutes)
        detected = started + timedelta(minutes=5)
        acknowledged = None if to_ack is None else detected + timedelta(seconds=to_ack)
        created.append(
            Incident(
                title="Random",
                severity=severity,
                started_at=started,
                detected_at=detected,
                acknowledged_at=acknowledged,
                acknowledged_recorded_at=acknowledged if corrected and acknowledged else None,
                resolved_at=None if to_res is None else detected + timedelta(seconds=to_res),
                response_due_at=detected + severity.response_time,
                escalation_due_at=detected + severity.escalation_time,
            )
        )
    Incident.objects.bulk_create(created)


@given(
    st.lists(st.integers(min_value=0, max_value=10**7), min_size=1, max_size=60),
    st.sampled_from([0.5, 0.9]),
)
@EXAMPLES
def test_percentile_is_linear_interpolation(values, share):
    expected = _reference([float(v) for v in values], share)
    got = percentile([timedelta(seconds=v) for v in values], share)
    assert got.total_seconds() == pytest.approx(expected, abs=1e-6)


def test_percentile_of_nothing_is_none():
    assert percentile([], 0.9) is None


@given(rows=incidents)
@EXAMPLES
def test_report_equals_the_definition(severities, rows):
    """Whatever the database (SQLite: the Python path; PostgreSQL: percentile_cont)."""
    _store(rows, severities)
    report = incident_report(since=SINCE, until=UNTIL, now=NOW)
    zone = timezone.get_current_timezone()
    start = datetime(SINCE.year, SINCE.month, SINCE.day, tzinfo=zone)
    end = datetime(UNTIL.year, UNTIL.month, UNTIL.day, tzinfo=zone) + timedelta(days=1)
    months = _months(SINCE, UNTIL)
    ack, res = defaultdict(list), defaultdict(list)
    counts, timed, in_time, corrected = (
        defaultdict(int),
        defaultdict(int),
        defaultdict(int),
        defaultdict(int),
    )
    for code, minutes, to_ack, to_res, was_corrected in rows:
        started = start + timedelta(minutes=minutes)
        if not start <= started < end:
            continue
        month = months.index(started.astimezone(zone).date().replace(day=1))
        due = started + timedelta(minutes=5) + severities[code].response_time
        for key in (code, "all"):
            counts[key] += 1
            if to_ack is not None:
                ack[key].append(float(to_ack))
                timed[key] += 1
                in_time[key] += to_ack <= severities[code].response_time.total_seconds()
                corrected[key] += was_corrected
            elif due < NOW:
                timed[key] += 1
            if to_res is not None:
                res[key].append(float(to_res))
        counts[code, month] += 1
        if to_ack is not None:
            ack[code, month].append(float(to_ack))
        if to_res is not None:
            res[code, month].append(float(to_res))

    for stats in [*report.stats, report.total]:
        key = stats.severity.code if stats.severity.pk else "all"
        assert (stats.count, stats.timed, stats.in_time, stats.corrected) == (
            counts[key],
            timed[key],
            in_time[key],
            corrected[key],
        )
        for got, values, share in [
            (stats.mtta_median, ack[key], 0.5),
            (stats.mtta_p90, ack[key], 0.9),
            (stats.mttr_median, res[key], 0.5),
            (stats.mttr_p90, res[key], 0.9),
        ]:
            expected = _reference(values, share)
            assert _seconds(got) == (
                None if expected is None else pytest.approx(expected, abs=1e-6)
            )
    for severity in report.severities:
        for month in range(len(months)):
            key = (severity.code, month)
            assert report.counts[severity.pk][month] == counts[key]
            for got, values in [
                (report.mtta_trend[severity.pk][month], ack[key]),
                (report.mttr_trend[severity.pk][month], res[key]),
            ]:
                expected = _reference(values, 0.5)
                assert _seconds(got) == (
                    None if expected is None else pytest.approx(expected, abs=1e-6)
                )


def _flatten(figures) -> dict:
    flat = {"counts": figures.counts, "mtta": figures.mtta_trend, "mttr": figures.mttr_trend}
    for stats in [*figures.stats.values(), figures.total]:
        flat[stats.severity.code] = (
            stats.count,
            stats.timed,
            stats.in_time,
            stats.corrected,
            stats.mtta_median,
            stats.mtta_p90,
            stats.mttr_median,
            stats.mttr_p90,
        )
    return flat


def _close(a, b) -> bool:
    if isinstance(a, timedelta) and isinstance(b, timedelta):
        return abs(a - b) <= timedelta(microseconds=1)  # interval rounding of the interpolation
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    return a == b


@pytest.mark.postgres
@given(rows=incidents)
@EXAMPLES
def test_sql_percentiles_equal_the_python_ones(severities, rows):
    _store(rows, severities)
    period = Incident.objects.filter(
        started_at__gte=datetime(2026, 1, 1, tzinfo=timezone.get_current_timezone())
    ).order_by()
    period = period.filter(
        started_at__lt=datetime(2026, 4, 1, tzinfo=timezone.get_current_timezone())
    )
    arguments = {
        "period": period,
        "severities": severities_all(),
        "months": _months(SINCE, UNTIL),
        "now": NOW,
    }
    in_sql, in_python = _figures_in_database(**arguments), _figures_in_python(**arguments)
    assert _close(_flatten(in_sql), _flatten(in_python))


@pytest.mark.postgres
def test_report_on_postgres_reads_figures_not_rows(
    make_incident, operator, django_assert_num_queries
):
    """One grouped query on PostgreSQL (per month, per severity and all, in one ROLLUP), plus
    the severities, the cache's fingerprint and the action items: no row per incident comes
    back. Asked again with nothing changed, the figures come from the cache."""
    for number in range(6):
        make_incident(
            operator, title=f"Incident {number}", detected_at=NOW - timedelta(days=number)
        )
    with django_assert_num_queries(4) as captured:
        report = incident_report(since=SINCE, until=UNTIL, now=NOW)
    assert report.total.count == 6
    figures = [
        query["sql"] for query in captured.captured_queries if "PERCENTILE_CONT" in query["sql"]
    ]
    assert len(figures) == 1 and "ROLLUP" in figures[0]
    with django_assert_num_queries(3):
        again = incident_report(since=SINCE, until=UNTIL, now=NOW)
    assert again.total.count == 6 and again.total.mtta_median == report.total.mtta_median


@pytest.mark.parametrize("zone", ["America/New_York", "Pacific/Auckland"])
def test_months_are_the_portal_time_zone_months(severities, zone):
    """An incident a minute before local midnight on the 1st counts in the month before, one
    at midnight in the new month, across a change to or from daylight saving time (New York
    in March, Auckland in April), on either database; months in UTC would move them."""
    with timezone.override(ZoneInfo(zone)):
        local = timezone.get_current_timezone()
        starts = {
            datetime(2025, 12, 31, 23, 59, tzinfo=local): None,  # before the period
            datetime(2026, 1, 1, 0, 0, tzinfo=local): 0,
            datetime(2026, 1, 31, 23, 59, tzinfo=local): 0,
            datetime(2026, 2, 1, 0, 0, tzinfo=local): 1,
            datetime(2026, 3, 31, 23, 59, tzinfo=local): 2,
            datetime(2026, 4, 1, 0, 0, tzinfo=local): 3,
            datetime(2026, 4, 30, 23, 59, tzinfo=local): 3,
            datetime(2026, 5, 1, 0, 0, tzinfo=local): None,  # after it
        }
        p2 = severities["P2"]
        Incident.objects.bulk_create(
            Incident(
                title="At a month's edge",
                severity=p2,
                started_at=started,
                detected_at=started,
                acknowledged_at=started + timedelta(minutes=minutes),
                response_due_at=started + p2.response_time,
                escalation_due_at=started + p2.escalation_time,
            )
            for minutes, started in enumerate(starts, start=1)
        )
        report = incident_report(since=date(2026, 1, 1), until=date(2026, 4, 30), now=NOW)
        in_python = _figures_in_python(
            period=Incident.objects.filter(
                started_at__gte=datetime(2026, 1, 1, tzinfo=local),
                started_at__lt=datetime(2026, 5, 1, tzinfo=local),
            ),
            severities=severities_all(),
            months=report.months,
            now=NOW,
        )
    # Acknowledged after 1, 2, … minutes in the order above: each month's median tells
    # which incidents it holds.
    assert report.counts[p2.pk] == in_python.counts[p2.pk] == [2, 1, 1, 2]
    medians = [timedelta(minutes=m) for m in (2.5, 4, 5, 6.5)]
    assert report.mtta_trend[p2.pk] == in_python.mtta_trend[p2.pk] == medians


@pytest.mark.parametrize("count", [3, 300])
def test_computed_report_page_reads_as_many_queries_at_any_size(
    severities, manager, count, django_assert_num_queries
):
    """The page with its figures computed (nothing cached): the session, the user and the
    manager's permissions, then the severities, the cache's fingerprint, the figures (one
    grouped query on PostgreSQL, one row per incident in one query elsewhere) and the open
    action items, whether the period holds 3 incidents or 300."""
    _store([("P1", 60 * 24 * (n % 80), 300 + n, 3600 + n, False) for n in range(count)], severities)
    client = client_for(manager)
    client.get(reverse("ops:incident_report"))  # the session and login, once
    cache.clear()
    with django_assert_num_queries(8):
        response = client.get(
            reverse("ops:incident_report"), {"since": "2026-01-01", "until": "2026-03-31"}
        )
    assert response.status_code == 200 and response.context["report"].total.count == count
