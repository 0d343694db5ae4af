"""Settings of the ops portal, read from the environment (see README, "Configuration").

Unset DATABASE_URL and REDIS_URL give the embedded default: SQLite and a file-based Celery broker
under var/, so `make run` needs no server. Set both for PostgreSQL and Redis.
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

from celery.schedules import crontab
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from portal.env import database_from_url, env_bool, env_int, env_list, env_str, sqlite_database

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("PORTAL_VAR_DIR") or BASE_DIR / "var").resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)
# prometheus-client keeps each process's counters in files here, so /metrics adds up every
# gunicorn and Celery process of this machine. It must be set before prometheus_client loads.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(VAR_DIR / "prometheus"))
Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DJANGO_DEBUG", False)


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        return key
    # No environment: keep one generated key per install so sessions survive restarts. A
    # deployment of several machines must set SECRET_KEY (the portal.W001 check says so).
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
SECRET_KEY_FROM_ENV = bool(env_str("SECRET_KEY"))
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "csp",
    "axes",
    "portal",
    "ops",
    "images",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "portal.middleware.HostUrlconfMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "portal.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "portal.middleware.RefuseNulParametersMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "portal.middleware.CSPMiddleware",
    "portal.middleware.RequestContextMiddleware",
    "portal.metrics.RequestMetricsMiddleware",
    # Last, as django-axes asks: it turns a login that locked its user out into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.portal",
                "portal.context_processors.navigation",
            ],
            "builtins": ["portal.templatetags.portal_tags"],
        },
    }
]

DATABASE_URL = env_str("DATABASE_URL")
DATABASES = {
    "default": database_from_url(DATABASE_URL)
    if DATABASE_URL
    else sqlite_database(VAR_DIR / "portal.sqlite3")
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "portal.cache.SharedClientRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "portal"),
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes checks the lockout before any password is hashed, so a locked-out guesser costs
# a query, not a worker's second of PBKDF2.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Login throttling: AXES_FAILURE_LIMIT failures of one username from one address lock that pair
# out for AXES_COOLOFF_MINUTES (others, and the same user elsewhere, can still log in); an
# admin unlocks it early (admin, "Access attempts": delete the row). A success resets the count.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "portal.accounts.login_locked_out"
# The same client address as the audit log (trusting X-Forwarded-For only as far as
# PORTAL_TRUSTED_PROXIES says).
AXES_CLIENT_IP_CALLABLE = "portal.middleware.request_client_address"
AXES_VERBOSE = False
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "today"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
# The time zone checklists are due in ("Morning check at 09:00" means 09:00 here).
TIME_ZONE = env_str("PORTAL_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
# Hashed, compressed names once `collectstatic` has run (make run, the Procfile's release step);
# plain names before that, so a fresh checkout and the tests need no build step.
STATIC_MANIFEST = env_bool("PORTAL_STATIC_MANIFEST", (STATIC_ROOT / "staticfiles.json").exists())
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if STATIC_MANIFEST
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
MEDIA_ROOT = VAR_DIR / "media"
MEDIA_URL = "media/"
# Serve straight from the app folders when collectstatic has not run (development, tests).
WHITENOISE_USE_FINDERS = True
WHITENOISE_MANIFEST_STRICT = False

# Security. PORTAL_HTTPS=1 behind TLS turns on the cookie and transport settings that
# `manage.py check --deploy` asks for.
HTTPS = env_bool("PORTAL_HTTPS", False)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS and env_bool("PORTAL_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = 31_536_000 if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
if env_bool("PORTAL_BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
# Sessions are read from the cache and written through to the database (portal/sessions.py):
# a poll answered from the cache then needs no query but the user's row.
SESSION_ENGINE = "portal.sessions"
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 12 * 3600, minimum=60)
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Number of reverse proxies in front of the portal whose X-Forwarded-For entries are trusted
# for the audit log's client address.
TRUSTED_PROXY_COUNT = env_int("PORTAL_TRUSTED_PROXIES", 0, minimum=0)

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "font-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [SELF],
        "object-src": [NONE],
    }
}

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "127.0.0.1")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "ops-portal@localhost")

# Celery. Redis when REDIS_URL is set; otherwise kombu's filesystem transport under var/, so
# beat and the worker really run without a server.
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    # Ten priority levels, served highest first: slow work (AVIF) is sent at 9 and waits for
    # everything else.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "priority_steps": list(range(10)),
        "sep": ":",
        "queue_order_strategy": "priority",
    }
else:
    _broker = VAR_DIR / "celery"
    for _folder in ("queue", "processed", "results", "control"):
        (_broker / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker / "queue"),
        "data_folder_out": str(_broker / "queue"),
        "processed_folder": str(_broker / "processed"),
        "control_folder": str(_broker / "control"),
        "store_processed": False,
    }
    CELERY_RESULT_BACKEND = f"file://{_broker / 'results'}"
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = timedelta(days=1)
CELERY_TASK_SOFT_TIME_LIMIT = 60
CELERY_TASK_TIME_LIMIT = 90
CELERY_WORKER_MAX_TASKS_PER_CHILD = 200
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULER = "portal.celery:HeartbeatScheduler"
CELERY_BEAT_SCHEDULE = {
    # /api/health counts workers alive by the heartbeat the worker taking this task writes.
    "portal-worker-heartbeat": {
        "task": "portal.worker_heartbeat",
        "schedule": 10.0,
        "options": {"expires": 9},
    },
    # Health checks: the due services (each has its own interval) are checked in parallel.
    "health-checks-run-due": {
        "task": "ops.health_checks_run_due",
        "schedule": 10.0,
        "options": {"expires": 9},
    },
    "health-results-prune": {"task": "ops.health_results_prune", "schedule": 3600.0},
    # Scans checklist templates whose next_run_at has passed and opens their runs; running it
    # twice (two beats, a restart) opens nothing twice: a unique constraint holds one run per
    # template and period.
    "checklist-runs-schedule": {
        "task": "ops.checklist_runs_schedule",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Notifies unacknowledged incidents past their response or escalation time; each step is
    # claimed by a unique row before it is sent, so a second beat sends nothing twice.
    "incident-notifications": {
        "task": "ops.incident_notifications_send",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Maintenance windows: occurrences started, their checklists opened, notices sent; each
    # notice is claimed by a unique row first, so a second beat sends nothing twice.
    "maintenance-scan": {
        "task": "ops.maintenance_scan",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # GDPR requests: deadline notices once each, expired exports deleted, lost jobs resent.
    "gdpr-housekeeping": {
        "task": "ops.gdpr_housekeeping",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Alert rules over the stored results: fire, resolve and escalate (one task a tick), then
    # the queued sends (claimed one by one, retried with backoff).
    "alerts-evaluate": {
        "task": "ops.alerts_evaluate",
        "schedule": 30.0,
        "options": {"expires": 28},
    },
    "alert-sends-deliver": {
        "task": "ops.alert_sends_deliver",
        "schedule": 15.0,
        "options": {"expires": 14},
    },
    # Live deploys whose worker stopped beating (killed) are sent again and followed on.
    "deploys-resume": {"task": "ops.deploys_resume", "schedule": 60.0, "options": {"expires": 55}},
    # Daily backups, weekly verification, retention after each backup (ops.services.backups).
    "backups-daily": {"task": "ops.backups_run_due", "schedule": crontab(hour=2, minute=15)},
    "backups-verify-weekly": {
        "task": "ops.backups_verify_latest",
        "schedule": crontab(hour=4, minute=0, day_of_week=0),
    },
    # Restore tests on staging when due (each target's restore_test_days, quarterly).
    "restore-tests-due": {"task": "ops.restore_tests_due", "schedule": crontab(hour=5, minute=0)},
}
# How long an export of a data-subject request stays downloadable before it is deleted.
GDPR_EXPORT_DAYS = env_int("GDPR_EXPORT_DAYS", 7, minimum=1)

# The portal's own events at LOG_LEVEL (INFO); the libraries' chatter (Celery's task lines,
# kombu, Django's requests) at WARNING unless LOG_LEVEL asks for DEBUG.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_LEVEL = (env_str("LOG_LEVEL", "INFO") or "INFO").upper()
if LOG_LEVEL not in LOG_LEVELS:
    raise ImproperlyConfigured(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
LIBRARY_LOG_LEVEL = LOG_LEVELS[max(LOG_LEVELS.index(LOG_LEVEL), 2) if LOG_LEVEL != "DEBUG" else 0]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LIBRARY_LOG_LEVEL},
    "loggers": {
        **{app: {"level": LOG_LEVEL} for app in ("portal", "ops", "images")},
        "django.db.backends": {"level": "INFO"},
        # django-axes logs every attempt at INFO; lockouts stay (WARNING), and all of it is in
        # the audit log.
        "axes": {"level": "WARNING"},
    },
}
# Celery keeps Django's logging above instead of replacing the root logger with its own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Health monitoring
DIGITALOCEAN_TOKEN = env_str("DIGITALOCEAN_TOKEN", "")
DIGITALOCEAN_API_URL = env_str("DIGITALOCEAN_API_URL", "https://api.digitalocean.com")
# Deploys and backups (ops.services.releases / backups). Seconds between looks at a running
# deployment; how long a phase may last before the job gives up; how old a heartbeat may be
# before another worker takes the deploy over; the newest backup production needs.
DEPLOY_POLL_SECONDS = env_int("DEPLOY_POLL_SECONDS", 3, minimum=0)
# How often a deploy or backup page asks for progress while the job runs.
DEPLOY_PAGE_POLL_SECONDS = env_int("DEPLOY_PAGE_POLL_SECONDS", 2, minimum=1)
DEPLOY_PHASE_TIMEOUT_SECONDS = env_int("DEPLOY_PHASE_TIMEOUT_SECONDS", 1800, minimum=1)
DEPLOY_HEALTH_INTERVAL_SECONDS = env_int("DEPLOY_HEALTH_INTERVAL_SECONDS", 10, minimum=0)
DEPLOY_STALE_SECONDS = env_int("DEPLOY_STALE_SECONDS", 60, minimum=1)
DEPLOY_BACKUP_MAX_AGE_HOURS = env_int("DEPLOY_BACKUP_MAX_AGE_HOURS", 24, minimum=1)
BACKUP_STORAGE_PREFIX = env_str("BACKUP_STORAGE_PREFIX", "backups")
# Verification restores into a new database named with this prefix, then drops it.
BACKUP_SCRATCH_PREFIX = env_str("BACKUP_SCRATCH_PREFIX", "portal_verify_")
# Bearer token that /metrics asks for; unset, /metrics answers 404.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
HEALTH_POLL_SECONDS = env_int("HEALTH_POLL_SECONDS", 10, minimum=2)
# For this long after a web process starts, /api/health answers 200 "starting" while workers
# and beat have not been seen yet (the database, cache and broker must answer).
HEALTH_STARTUP_GRACE_SECONDS = env_int("HEALTH_STARTUP_GRACE_SECONDS", 120, minimum=0)
# Where `make run` serves (HOST, PORT) and so where `setup_portal --demo` points the "Portal web"
# check; a wildcard address is checked on the loopback.
PORTAL_HOST = env_str("HOST", "127.0.0.1") or "127.0.0.1"
PORTAL_PORT = env_int("PORT", 8000, minimum=1)
if PORTAL_PORT > 65535:
    raise ImproperlyConfigured(f"PORT must be at most 65535, not {PORTAL_PORT}")
_demo_host = "127.0.0.1" if PORTAL_HOST in {"0.0.0.0", "", "*"} else PORTAL_HOST  # noqa: S104
_demo_host = "[::1]" if _demo_host in {"::", "[::]"} else _demo_host
if ":" in _demo_host and not _demo_host.startswith("["):
    _demo_host = f"[{_demo_host}]"
PORTAL_DEMO_HOST = env_str("PORTAL_DEMO_HOST") or f"{_demo_host}:{PORTAL_PORT}"

# Checklists
PORTAL_NAME = env_str("PORTAL_NAME", "Ops portal")
# How often an open run page asks for other operators' ticks (seconds).
CHECKLIST_POLL_SECONDS = env_int("CHECKLIST_POLL_SECONDS", 3, minimum=1)
# How long after a run completes its last actor may undo the last tick or skip (minutes).
CHECKLIST_UNDO_MINUTES = env_int("CHECKLIST_UNDO_MINUTES", 10, minimum=0)

# Incidents
# Who is e-mailed when an incident passes its response or escalation time unacknowledged.
INCIDENT_NOTIFY_EMAILS = env_list("INCIDENT_NOTIFY_EMAILS", [])
# Optional chat webhook that receives the same notification as JSON ({"text": ..., ...}).
INCIDENT_WEBHOOK_URL = env_str("INCIDENT_WEBHOOK_URL", "") or ""
if INCIDENT_WEBHOOK_URL and not INCIDENT_WEBHOOK_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured("INCIDENT_WEBHOOK_URL must start with http:// or https://")
INCIDENT_WEBHOOK_TIMEOUT = env_int("INCIDENT_WEBHOOK_TIMEOUT", 5, minimum=1)
# How often an open incident's page refreshes its clocks and timeline (seconds).
INCIDENT_POLL_SECONDS = env_int("INCIDENT_POLL_SECONDS", 5, minimum=1)

# Alerts
# The address the one-click links in alert messages start with.
PORTAL_BASE_URL = env_str("PORTAL_BASE_URL") or f"http://{PORTAL_DEMO_HOST}"
# How long a one-click acknowledgement link works (seconds; each works once).
ALERT_ACK_LINK_MAX_AGE = env_int("ALERT_ACK_LINK_MAX_AGE", 3600, minimum=60)
# The severity of the incident a critical alert opens.
ALERT_INCIDENT_SEVERITY = env_str("ALERT_INCIDENT_SEVERITY", "P1") or "P1"

# The public status page (ops.views.status)
# A host name of its own (status.example.com): requests for it get the public page, its feeds,
# the subscription pages and static files, and nothing else (404); /status/ on the portal's
# host keeps working. Added to ALLOWED_HOSTS.
STATUS_HOST = (env_str("STATUS_HOST", "") or "").strip().lower()
if STATUS_HOST and ("/" in STATUS_HOST or ":" in STATUS_HOST.strip("[]")):
    raise ImproperlyConfigured(
        f"STATUS_HOST is a host name (status.example.com), not {STATUS_HOST!r}"
    )
if STATUS_HOST and STATUS_HOST not in ALLOWED_HOSTS and "*" not in ALLOWED_HOSTS:
    ALLOWED_HOSTS = [*ALLOWED_HOSTS, STATUS_HOST]
# Which URLs a host serves, when not ROOT_URLCONF (portal.middleware.HostUrlconfMiddleware).
HOST_URLCONFS = {STATUS_HOST: "ops.status_urls"} if STATUS_HOST else {}
# Where the links in subscribers' e-mail point: the status host, else the portal's address.
STATUS_BASE_URL = env_str("STATUS_BASE_URL") or (
    f"{'https' if HTTPS else 'http'}://{STATUS_HOST}" if STATUS_HOST else PORTAL_BASE_URL
)
# The rendered public pages are kept this long in the cache (0: not at all); a public update
# or an override replaces them at once, health and maintenance within this time.
STATUS_CACHE_SECONDS = env_int("STATUS_CACHE_SECONDS", 30, minimum=0)
# How long a subscription's confirmation link works (an unconfirmed address is then deleted).
STATUS_CONFIRM_HOURS = env_int("STATUS_CONFIRM_HOURS", 48, minimum=1)
# Subscription requests accepted per hour from one client address, and for one e-mail address.
STATUS_SUBSCRIBE_PER_CLIENT = env_int("STATUS_SUBSCRIBE_PER_CLIENT", 10, minimum=1)
STATUS_SUBSCRIBE_PER_ADDRESS = env_int("STATUS_SUBSCRIBE_PER_ADDRESS", 3, minimum=1)
CELERY_BEAT_SCHEDULE["status-subscribers"] = {
    # Subscribers' e-mail: maintenance announcements turned into notices, notices into one
    # delivery per subscriber, due deliveries sent (claimed, retried with backoff). The rows
    # are the truth: this finds whatever a lost message or a dead worker left undone.
    "task": "ops.status_subscribers_tick",
    "schedule": 15.0,
    "options": {"expires": 14},
}

# Images
# Limits of an upload (the upload form, the API and the workers all apply them).
IMAGE_MAX_UPLOAD_BYTES = env_int("IMAGE_MAX_UPLOAD_BYTES", 200 * 1024 * 1024, minimum=1024)
IMAGE_MAX_FILES_PER_BATCH = env_int("IMAGE_MAX_FILES_PER_BATCH", 100, minimum=1)
IMAGE_MAX_PIXELS = env_int("IMAGE_MAX_PIXELS", 120_000_000, minimum=1_000_000)
# Django refuses a request with more files than this (400) before any form sees it: leave room
# so that "too many files" is a form error that says the limit.
DATA_UPLOAD_MAX_NUMBER_FILES = IMAGE_MAX_FILES_PER_BATCH * 2
# Uploads over 2.5 MB stream to temporary files, never into memory (Django's default).
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
# One image per task. The soft limit fails the image with a reason; the hard one kills the
# worker's child. A claim older than IMAGE_CLAIM_STALE_SECONDS belongs to a dead worker and is
# taken over, so it must exceed the hard limit: a live worker's claim is never stolen.
IMAGE_TASK_SOFT_TIME_LIMIT = env_int("IMAGE_TASK_SOFT_TIME_LIMIT", 120, minimum=5)
IMAGE_TASK_TIME_LIMIT = env_int("IMAGE_TASK_TIME_LIMIT", 150, minimum=6)
IMAGE_CLAIM_STALE_SECONDS = env_int("IMAGE_CLAIM_STALE_SECONDS", 300, minimum=7)
if not IMAGE_TASK_SOFT_TIME_LIMIT < IMAGE_TASK_TIME_LIMIT < IMAGE_CLAIM_STALE_SECONDS:
    raise ImproperlyConfigured(
        "IMAGE_TASK_SOFT_TIME_LIMIT < IMAGE_TASK_TIME_LIMIT < IMAGE_CLAIM_STALE_SECONDS must hold"
    )
# An image whose worker died this many times is failed instead of being queued again.
IMAGE_MAX_ATTEMPTS = env_int("IMAGE_MAX_ATTEMPTS", 3, minimum=1)
# How often a batch page asks for progress (seconds).
IMAGE_POLL_SECONDS = env_int("IMAGE_POLL_SECONDS", 2, minimum=1)
# Queued images whose message never reached the broker (it was down) are sent by the reclaim;
# those sent longer ago than this are sent again, in case the broker lost the message (a second
# message for an image does nothing: the claim decides).
IMAGE_RESEND_SECONDS = env_int("IMAGE_RESEND_SECONDS", 900, minimum=60)
IMAGE_RECLAIM_SECONDS = env_int("IMAGE_RECLAIM_SECONDS", 15, minimum=5)
CELERY_BEAT_SCHEDULE["image-claims-reclaim"] = {
    # Images whose worker died (a killed machine, the hard time limit) are queued again, and
    # queued images with no message (the broker was down) are sent.
    "task": "images.image_claims_reclaim",
    "schedule": float(IMAGE_RECLAIM_SECONDS),
    "options": {"expires": IMAGE_RECLAIM_SECONDS - 1},
}
# Media (originals and variants) go through Django's storage API: the file system under
# var/media, or an S3-compatible bucket (DigitalOcean Spaces) when MEDIA_S3_BUCKET is set. They
# are never served publicly: a login-checked view streams them (MEDIA_URL is not routed).
MEDIA_S3_BUCKET = env_str("MEDIA_S3_BUCKET")
if MEDIA_S3_BUCKET:
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": MEDIA_S3_BUCKET,
            "endpoint_url": env_str("MEDIA_S3_ENDPOINT_URL"),
            "region_name": env_str("MEDIA_S3_REGION"),
            "access_key": env_str("MEDIA_S3_ACCESS_KEY_ID"),
            "secret_key": env_str("MEDIA_S3_SECRET_ACCESS_KEY"),
            "location": env_str("MEDIA_S3_PREFIX", ""),
            "default_acl": "private",
            "querystring_auth": True,
            # Names are content hashes: the same name always holds the same bytes.
            "file_overwrite": True,
        },
    }
# Database backups (ops.services.backups): the file system under var/backups, or an
# S3-compatible bucket when BACKUP_S3_BUCKET is set. Dumps are streamed, never held in memory.
BACKUP_S3_BUCKET = env_str("BACKUP_S3_BUCKET")
if BACKUP_S3_BUCKET:
    STORAGES["backups"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": BACKUP_S3_BUCKET,
            "endpoint_url": env_str("BACKUP_S3_ENDPOINT_URL"),
            "region_name": env_str("BACKUP_S3_REGION"),
            "access_key": env_str("BACKUP_S3_ACCESS_KEY_ID"),
            "secret_key": env_str("BACKUP_S3_SECRET_ACCESS_KEY"),
            "default_acl": "private",
            "file_overwrite": False,
        },
    }
else:
    STORAGES["backups"] = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(VAR_DIR / "backups")},
    }
