"""The checks themselves: plain functions that probe one target and return an Outcome.

No Django models here and no database writes: a check only talks to its target, within its
timeout, and never raises (anything unexpected becomes a critical or unknown outcome with the
reason), so the caller can run many at once in threads and store the results afterwards.
"""

import json
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.client import HTTPResponse
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import HTTPRedirectHandler, HTTPSHandler, Request, build_opener

from azure.core.exceptions import AzureError, ClientAuthenticationError
from kombu.exceptions import ChannelError

from portal.secrets import UnresolvedSecret, env_reference, mask_url, resolve_env, scrub

OK, WARNING, CRITICAL, UNKNOWN = "ok", "warning", "critical", "unknown"
MAX_BODY = 256 * 1024
HTTP_SCHEMES = frozenset({"http", "https"})
# What an HTTP check says when the answer is not the expected one: never the answer itself,
# which may hold anything the target knows.
BODY_MISMATCH = "body did not match"
FIELD_MISMATCH = "field did not match"


@dataclass
class Outcome:
    state: str
    detail: str
    latency_ms: float | None = None
    metrics: dict = field(default_factory=dict)


@dataclass
class CheckSpec:
    """What a check needs to know, copied from the service row."""

    kind: str
    target: str
    timeout: float = 5.0
    latency_warning_ms: int = 1000
    latency_critical_ms: int = 2000
    expected_status: int = 200
    body_contains: str = ""
    json_field: str = ""
    json_value: str = ""
    days_warning: int = 21
    days_critical: int = 7
    queue_warning: int = 50
    queue_critical: int = 100


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _latency_state(spec: CheckSpec, latency_ms: float) -> tuple[str, str]:
    if latency_ms >= spec.latency_critical_ms:
        return CRITICAL, f"slow: {latency_ms:.0f} ms (critical from {spec.latency_critical_ms} ms)"
    if latency_ms >= spec.latency_warning_ms:
        return WARNING, f"slow: {latency_ms:.0f} ms (warning from {spec.latency_warning_ms} ms)"
    return OK, ""


def _network_reason(error: BaseException, timeout: float) -> str:
    """A short human reason for a failed connection."""
    if isinstance(error, URLError) and not isinstance(error, HTTPError):
        error = error.reason if isinstance(error.reason, BaseException) else error
    if isinstance(error, socket.gaierror):
        return f"DNS lookup failed: {error.strerror or error}"
    if isinstance(error, TimeoutError | socket.timeout):
        return f"timed out after {timeout:g} s"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {error.verify_message or error.reason}"
    if isinstance(error, ssl.SSLError):
        return f"TLS error: {error.reason or error}"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


class _NoRedirect(HTTPRedirectHandler):
    """Report a redirect's status instead of following it: the check is about this URL."""

    def redirect_request(self, *args, **kwargs):
        return None


def _json_path(document, path: str):
    value = document
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise KeyError(path)
    return value


def check_http(spec: CheckSpec, *, context: ssl.SSLContext | None = None) -> Outcome:
    # urllib opens file://, ftp:// and data: URLs too: only the web is checked, whatever
    # reached the row (an old row, an environment variable).
    if urlsplit(spec.target).scheme.lower() not in HTTP_SCHEMES:
        return Outcome(CRITICAL, "refused: only http:// and https:// URLs are checked")
    opener = build_opener(_NoRedirect)
    if context is not None:
        opener = build_opener(_NoRedirect, HTTPSHandler(context=context))
    request = Request(spec.target, headers={"User-Agent": "ops-portal-health/1"})  # noqa: S310
    started = time.perf_counter()
    try:
        response: HTTPResponse = opener.open(request, timeout=spec.timeout)
        status = response.status
        body = response.read(MAX_BODY)
    except HTTPError as error:
        status, body = error.code, error.read(MAX_BODY) if error.fp else b""
    except (URLError, OSError, ValueError) as error:
        return Outcome(CRITICAL, _network_reason(error, spec.timeout), _elapsed_ms(started))
    latency = _elapsed_ms(started)
    metrics = {"status": status}
    if status != spec.expected_status:
        return Outcome(
            CRITICAL, f"HTTP {status}, expected {spec.expected_status}", latency, metrics
        )
    text = body.decode("utf-8", "replace")
    if spec.body_contains and spec.body_contains not in text:
        return Outcome(CRITICAL, BODY_MISMATCH, latency, metrics)
    if spec.json_field:
        try:
            value = _json_path(json.loads(text), spec.json_field)
        except (ValueError, KeyError):
            return Outcome(CRITICAL, FIELD_MISMATCH, latency, metrics)
        if spec.json_value and str(value) != spec.json_value:
            return Outcome(CRITICAL, FIELD_MISMATCH, latency, metrics)
    state, why = _latency_state(spec, latency)
    return Outcome(state, why or f"HTTP {status}", latency, metrics)


def _host_port(target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    return host.strip("[]"), int(port)


def check_tcp(spec: CheckSpec) -> Outcome:
    host, port = _host_port(spec.target)
    started = time.perf_counter()
    try:
        with socket.create_connection((host, port), timeout=spec.timeout):
            latency = _elapsed_ms(started)
    except OSError as error:
        return Outcome(CRITICAL, _network_reason(error, spec.timeout), _elapsed_ms(started))
    state, why = _latency_state(spec, latency)
    return Outcome(state, why or f"port {port} open", latency)


def check_tls(spec: CheckSpec, *, context: ssl.SSLContext | None = None) -> Outcome:
    """Days until the certificate expires; an untrusted certificate is critical."""
    host, port = _host_port(spec.target)
    context = context or ssl.create_default_context()
    started = time.perf_counter()
    try:
        with (
            socket.create_connection((host, port), timeout=spec.timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            certificate = tls.getpeercert()
            latency = _elapsed_ms(started)
    except (OSError, ValueError) as error:
        return Outcome(CRITICAL, _network_reason(error, spec.timeout), _elapsed_ms(started))
    expires = datetime.fromtimestamp(ssl.cert_time_to_seconds(certificate["notAfter"]), tz=UTC)
    days = (expires - datetime.now(tz=UTC)).total_seconds() / 86400
    metrics = {"days_left": round(days, 1), "expires": expires.isoformat()}
    summary = f"expires {expires:%Y-%m-%d} ({days:.0f} days)"
    if days <= spec.days_critical:
        return Outcome(CRITICAL, summary, latency, metrics)
    if days <= spec.days_warning:
        return Outcome(WARNING, summary, latency, metrics)
    return Outcome(OK, summary, latency, metrics)


def check_postgres(spec: CheckSpec) -> Outcome:
    import psycopg

    started = time.perf_counter()
    try:
        with psycopg.connect(
            spec.target,
            connect_timeout=max(1, round(spec.timeout)),
            options=f"-c statement_timeout={int(spec.timeout * 1000)}",
        ) as connection:
            connection.execute("SELECT 1").fetchone()
    except psycopg.Error as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return Outcome(CRITICAL, message[:300], _elapsed_ms(started))
    latency = _elapsed_ms(started)
    state, why = _latency_state(spec, latency)
    return Outcome(state, why or "SELECT 1 answered", latency)


def check_redis(spec: CheckSpec) -> Outcome:
    import redis

    started = time.perf_counter()
    client = redis.Redis.from_url(
        spec.target, socket_timeout=spec.timeout, socket_connect_timeout=spec.timeout
    )
    try:
        client.ping()
        latency = _elapsed_ms(started)
        memory = client.info("memory")
        stats = client.info("stats")
    except (redis.RedisError, OSError) as error:
        return Outcome(CRITICAL, str(error)[:300] or "Redis error", _elapsed_ms(started))
    finally:
        client.close()
    hits, misses = stats.get("keyspace_hits", 0), stats.get("keyspace_misses", 0)
    metrics = {
        "used_memory": memory.get("used_memory"),
        "used_memory_human": memory.get("used_memory_human"),
        "hit_rate": round(100 * hits / (hits + misses), 2) if hits + misses else None,
    }
    state, why = _latency_state(spec, latency)
    summary = f"PONG, {metrics['used_memory_human']} used"
    if metrics["hit_rate"] is not None:
        summary += f", {metrics['hit_rate']}% cache hits"
    return Outcome(state, why or summary, latency, metrics)


def check_celery(
    spec: CheckSpec, *, app, count_workers: Callable[[], int] | None = None
) -> Outcome:
    """Workers answering a ping and the length of each queue (warn at 50, page at 100).
    ``count_workers`` replaces the ping where the broker cannot broadcast safely."""
    queues = [name.strip() for name in spec.target.split(",") if name.strip()] or [
        app.conf.task_default_queue
    ]
    # Set before the ping: a broker that is down fails the ping itself, and that is critical.
    started = time.perf_counter()
    try:
        # A ping waits its whole timeout for replies, so its duration says nothing: the
        # latency reported is the broker's, measuring the queues.
        if count_workers is None:
            workers = len(app.control.ping(timeout=min(spec.timeout, 2.0)) or [])
        else:
            workers = count_workers()
        lengths = {}
        started = time.perf_counter()
        with app.connection_for_read() as connection:
            channel = connection.default_channel
            for queue in queues:
                try:
                    lengths[queue] = channel.queue_declare(queue=queue, passive=True).message_count
                except ChannelError:
                    # Redis knows a queue only once a worker has bound it: nothing waits in it.
                    lengths[queue] = 0
    except Exception as error:
        return Outcome(CRITICAL, f"broker: {error}"[:300], _elapsed_ms(started))
    latency = _elapsed_ms(started)
    longest = max(lengths.values(), default=0)
    metrics = {"workers": workers, "queues": lengths, "queue_max": longest}
    summary = f"{workers} worker{'s' if workers != 1 else ''}, " + ", ".join(
        f"{q}: {n}" for q, n in lengths.items()
    )
    if not workers:
        return Outcome(CRITICAL, "no worker answered; " + summary, latency, metrics)
    if longest >= spec.queue_critical:
        return Outcome(CRITICAL, summary, latency, metrics)
    if longest >= spec.queue_warning:
        return Outcome(WARNING, summary, latency, metrics)
    return Outcome(OK, summary, latency, metrics)


def check_do_app(spec: CheckSpec, *, client_factory: Callable) -> Outcome:
    """The app's active deployment and any deployment in progress, through pydo."""
    started = time.perf_counter()
    try:
        answer = client_factory().apps.get(spec.target)
    except ClientAuthenticationError:
        return Outcome(CRITICAL, "the DigitalOcean token was refused", _elapsed_ms(started))
    except AzureError as error:
        return Outcome(CRITICAL, f"DigitalOcean API: {error}"[:300], _elapsed_ms(started))
    latency = _elapsed_ms(started)
    if answer.get("id") == "not_found" or "app" not in answer:
        return Outcome(CRITICAL, f"app {spec.target} not found", latency)
    app = answer["app"]
    active = (app.get("active_deployment") or {}).get("phase", "UNKNOWN")
    progress = (app.get("in_progress_deployment") or {}).get("phase")
    metrics = {"active_phase": active, "in_progress_phase": progress}
    summary = f"active deployment {active}" + (f", deploying ({progress})" if progress else "")
    if active != "ACTIVE" or progress == "ERROR":
        return Outcome(CRITICAL, summary, latency, metrics)
    if progress:
        return Outcome(WARNING, summary, latency, metrics)
    return Outcome(OK, summary, latency, metrics)


def run_check(
    spec: CheckSpec, *, celery_app=None, do_client_factory=None, count_workers=None
) -> Outcome:
    """Run the check of ``spec.kind`` on its target, an ``env:`` one resolved now; whatever it
    raises becomes an unknown outcome. The resolved target never shows in the detail."""
    # A target may name the environment variable that holds it (env:DATABASE_URL): a URL with
    # a password lives in the workers' environment, never in the database or on a page.
    try:
        target = resolve_env(spec.target)
    except UnresolvedSecret as error:
        return Outcome(CRITICAL, str(error))
    if target != spec.target:
        spec = replace(spec, target=target)
        outcome = _run_check(spec, celery_app, do_client_factory, count_workers)
        outcome.detail = scrub(outcome.detail, [target, _password(target)])
        return outcome
    outcome = _run_check(spec, celery_app, do_client_factory, count_workers)
    outcome.detail = scrub(outcome.detail, [_password(target)])
    return outcome


def _password(url: str) -> str:
    try:
        return urlsplit(url).password or ""
    except ValueError:
        return ""


def _run_check(spec: CheckSpec, celery_app, do_client_factory, count_workers) -> Outcome:
    checks: dict[str, Callable[[], Outcome]] = {
        "http": lambda: check_http(spec),
        "tcp": lambda: check_tcp(spec),
        "tls": lambda: check_tls(spec),
        "postgres": lambda: check_postgres(spec),
        "redis": lambda: check_redis(spec),
        "celery": lambda: check_celery(spec, app=celery_app, count_workers=count_workers),
        "do_app": lambda: check_do_app(spec, client_factory=do_client_factory),
    }
    check = checks.get(spec.kind)
    if check is None:
        return Outcome(UNKNOWN, f"unknown kind of check “{spec.kind}”")
    try:
        return check()
    except Exception as error:
        return Outcome(UNKNOWN, f"check failed: {type(error).__name__}: {error}"[:300])


def describe_target(target: str) -> str:
    """The target without credentials, for pages and logs: an ``env:`` reference as it is,
    a URL with its password and secret query parameters masked."""
    return target if env_reference(target) is not None else mask_url(target)
