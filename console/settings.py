"""Field Console settings: one module, read from the environment (django-environ).

Every name below that an operator can set is listed in `.env.example` and in
docs/ and the README. Malformed values fail loudly at start-up.
"""

import re
import sys
from decimal import Decimal
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

TESTING = "pytest" in sys.modules or (len(sys.argv) > 1 and sys.argv[1] == "test")

DEBUG = env.bool("DEBUG", default=False)


def _local_secret_key() -> str:
    """Embedded default only: a random key kept in var/secret_key, made on first use, so
    the web process, the worker and the commands on one machine agree. Production sets
    SECRET_KEY."""
    path = BASE_DIR / "var" / "secret_key"
    if not path.exists():
        import secrets

        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(path, "x") as fh:
                fh.write(secrets.token_urlsafe(50))
        except FileExistsError:
            pass  # another process made it first
    return path.read_text().strip()


SECRET_KEY = env.str("SECRET_KEY", default="") or _local_secret_key()

ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"] if (DEBUG or TESTING) else []
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "console",
    "devices",
    "licensing",
    "billing",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    # Staff two-factor sign-in (console.staff_otp): authenticators and recovery codes.
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # django-csp's middleware, on pages only: the JSON API needs no policy.
    "console.content_security.PageCSPMiddleware",
    "django_permissions_policy.PermissionsPolicyMiddleware",
    # Before sessions and CSRF: a login posted from a locked-out address is a cheap 429.
    "console.login_limits.LockedOutAddressMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After authentication: a logged-in user's saved language wins over the cookie.
    "console.user_language.UserLanguageMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "console.staff_otp.StaffTwoFactorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a login lockout into the 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "console.urls"
WSGI_APPLICATION = "console.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "console.context_processors.console",
            ],
        },
    },
]

# Embedded default: a SQLite file beside the project. Production sets DATABASE_URL.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Wait for a writer instead of failing at once: the web process, the worker and beat
    # share the file in the embedded default.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("timeout", 20)
    DATABASES["default"]["OPTIONS"].setdefault("transaction_mode", "IMMEDIATE")
_POSTGRESQL = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
# Persistent connections by default on PostgreSQL, checked before reuse (Django's
# CONN_HEALTH_CHECKS): a new connection per request cost the gateways' calls 9 in 10 of their
# throughput (bench/RESULTS.md). SQLite opens a file, which costs nothing to keep per request.
DATABASES["default"].setdefault(
    "CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=600 if _POSTGRESQL else 0)
)
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", env.bool("CONN_HEALTH_CHECKS", default=True))
# Behind a transaction-pooling proxy (PgBouncer in transaction mode): no server-side cursors
# (Django's own setting for it) and no prepared statements, which belong to a server session
# that the proxy shares between clients.
DB_TRANSACTION_POOLING = env.bool("DB_TRANSACTION_POOLING", default=False)
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = DB_TRANSACTION_POOLING
if _POSTGRESQL and not DB_TRANSACTION_POOLING:
    # Server-side parameter binding, and psycopg's own prepared statements for a query run
    # more than 5 times on a connection (both documented OPTIONS): PostgreSQL then parses and
    # plans the gateways' few statements once per connection instead of on every call
    # (bench/RESULTS.md). Off behind a transaction pooler, whose server sessions are shared.
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _options.setdefault("server_side_binding", env.bool("DB_SERVER_SIDE_BINDING", default=True))
    _options.setdefault("prepare_threshold", env.int("DB_PREPARE_THRESHOLD", default=5))
DATABASES["default"]["ATOMIC_REQUESTS"] = False

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "console.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
# django-axes first: it refuses a locked-out login before any password is hashed.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    # Password hashing dominates test time; production keeps Django's default hasher.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# R12: business dates are Asia/Shanghai whatever the display time zone; storage is UTC.
LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if (DEBUG or TESTING)
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# Email: EMAIL_URL (e.g. smtp://user:pass@host:587) or the usual EMAIL_* settings.
# Embedded default: emails are written as files a developer can read, under var/mail/.
if "EMAIL_URL" in env:
    vars().update(env.email_url("EMAIL_URL"))
else:
    EMAIL_BACKEND = env.str(
        "EMAIL_BACKEND", default="django.core.mail.backends.filebased.EmailBackend"
    )
    EMAIL_FILE_PATH = env.path("EMAIL_FILE_PATH", default=BASE_DIR / "var" / "mail")
    EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
    EMAIL_PORT = env.int("EMAIL_PORT", default=25)
    EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
    EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
    EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
    EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
# R13: a hung mail server must not hold an outbox sender past its lease (console.outbox).
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Field Console <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Product settings -------------------------------------------------------------------
# R2: list price per license per year, CNY. A tenant's contract price overrides it.
LICENSE_LIST_PRICE = Decimal(env.str("LICENSE_LIST_PRICE", default="3600.00"))
if LICENSE_LIST_PRICE <= 0 or LICENSE_LIST_PRICE.as_tuple().exponent < -2:
    raise ImproperlyConfigured("LICENSE_LIST_PRICE must be positive with at most two decimals.")
CURRENCY = "CNY"
# Where customers transfer money, shown on every pending order (page, email, receipt) with
# the order's transfer reference; and the seller printed on receipts. The defaults are a
# demo's: a deployment that sells sets all six.
PAYEE_NAME = env.str("PAYEE_NAME", default="Field Console Demo Co., Ltd.")
PAYEE_BANK = env.str("PAYEE_BANK", default="Demo Bank, Shanghai Branch")
PAYEE_ACCOUNT = env.str("PAYEE_ACCOUNT", default="0000 0000 0000 0000")
SELLER_NAME = env.str("SELLER_NAME", default="Field Console Demo Co., Ltd.")
SELLER_ADDRESS = env.str("SELLER_ADDRESS", default="1 Demo Road, Pudong, Shanghai, China")
SELLER_TAX_ID = env.str("SELLER_TAX_ID", default="91310000DEMO00000X")
# R13: who gets staff notices (a new application, a refund request, the morning digest).
# Empty: the active staff users of the group that acts on each (console.staff).
STAFF_NOTIFY_EMAILS = env.list("STAFF_NOTIFY_EMAILS", default=[])
for _address in STAFF_NOTIFY_EMAILS:
    if "@" not in _address.strip() or " " in _address.strip():
        raise ImproperlyConfigured(f"STAFF_NOTIFY_EMAILS: {_address!r} is not an email address.")
# R8: a control lease lasts this long unless a heartbeat extends it.
CONTROL_LEASE_SECONDS = env.int("CONTROL_LEASE_SECONDS", default=30)
# R14: how long a signed entitlement token lets a gateway stream without the console (its
# `exp` is also never past the earliest expiry of the licenses that grant it), and how long
# gateways may cache the published keys (/.well-known/jwks.json). A new signing key starts
# signing only after that cache lifetime, so it must stay shorter than the TTL.
ENTITLEMENT_TOKEN_TTL = env.int("ENTITLEMENT_TOKEN_TTL", default=900)
ENTITLEMENT_JWKS_MAX_AGE = env.int("ENTITLEMENT_JWKS_MAX_AGE", default=300)
if not 60 <= ENTITLEMENT_TOKEN_TTL <= 86_400:
    raise ImproperlyConfigured("ENTITLEMENT_TOKEN_TTL must be 60 to 86400 seconds.")
if not 0 <= ENTITLEMENT_JWKS_MAX_AGE < ENTITLEMENT_TOKEN_TTL:
    raise ImproperlyConfigured(
        "ENTITLEMENT_JWKS_MAX_AGE must be at least 0 and shorter than ENTITLEMENT_TOKEN_TTL."
    )
if CONTROL_LEASE_SECONDS < 1:
    raise ImproperlyConfigured("CONTROL_LEASE_SECONDS must be at least 1.")
# An API key's last_used_at is written at most this often (keeps the hot path read-only).
API_KEY_TOUCH_SECONDS = 60
# R15 webhooks (console.webhooks): http:// receivers, and receivers on private, loopback or
# link-local networks (air-gapped sites), are refused unless allowed here; a CA file for
# receivers whose certificates an internal CA signed.
WEBHOOK_ALLOW_HTTP = env.bool("WEBHOOK_ALLOW_HTTP", default=False)
WEBHOOK_ALLOW_PRIVATE = env.bool("WEBHOOK_ALLOW_PRIVATE", default=False)
WEBHOOK_CA_BUNDLE = env.str("WEBHOOK_CA_BUNDLE", default="")
if WEBHOOK_CA_BUNDLE and not Path(WEBHOOK_CA_BUNDLE).is_file():
    raise ImproperlyConfigured(f"WEBHOOK_CA_BUNDLE: {WEBHOOK_CA_BUNDLE} is not a file.")

# --- Celery -------------------------------------------------------------------------------
# REDIS_URL set: Redis is the broker. Unset (the embedded default): a filesystem broker
# under var/celery/ that needs no server, so `make run` shows the jobs running.
REDIS_URL = env.str("REDIS_URL", default="")
CELERY_BROKER_DIR = BASE_DIR / "var" / "celery"
# Redis hands an unacknowledged task (its worker died) to another worker after this many
# seconds. Every task's hard time limit stays under it (tasks are cut into batches and
# chunks of seconds), so a killed worker's work resumes within minutes, not an hour.
BROKER_VISIBILITY_TIMEOUT = env.int("BROKER_VISIBILITY_TIMEOUT", default=300)
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": BROKER_VISIBILITY_TIMEOUT,
        # Each worker looks for such tasks every 10 s (kombu's default is every 100 s: ten
        # 10-second ticks), so one comes back at most seconds after its timeout.
        "unacked_restore_interval": max(1, min(10, BROKER_VISIBILITY_TIMEOUT // 10)),
        "unacked_restore_throttle": 1,
    }
else:
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "store_processed": False,
        # kombu's default is "control" relative to the working directory.
        "control_folder": str(CELERY_BROKER_DIR / "control"),
    }
    # The transport lists these folders at start-up and fails if they are missing, so a bare
    # `celery -A console worker -B` works on a fresh checkout too.
    for _folder in ("queue", "processed", "control"):
        (CELERY_BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=TESTING)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
# A task is acknowledged when it ends and queued again when its worker dies: every task
# must be safe to re-run (those that are not say acks_late=False; console/tests/
# test_celery_config.py lists which is which).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Under BROKER_VISIBILITY_TIMEOUT, or a task still running would be handed out again.
CELERY_TASK_TIME_LIMIT = 240
CELERY_TASK_SOFT_TIME_LIMIT = 210
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- REST framework -----------------------------------------------------------------------
# The cache: Redis when REDIS_URL is set (API rate limits are then shared by every web
# process, as the contract needs); the embedded default keeps it in the process.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "fc",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# API calls per key, e.g. "600/s" or "20000/m" (DRF's rate syntax). Unset (the default): no
# limit, as fleets share keys and a surprise 429 would stop their gateways.
API_RATE_LIMIT = env.str("API_RATE_LIMIT", default="").strip()
if API_RATE_LIMIT and not re.fullmatch(
    r"[1-9][0-9]*/(s|m|h|d|sec|second|min|minute|hour|day)", API_RATE_LIMIT
):
    raise ImproperlyConfigured(
        "API_RATE_LIMIT must look like 600/s, 20000/m, 500000/h or 1000000/d."
    )

# --- Client address and login limits (CONTRACT: "Rate limits", BEHIND_PROXY) ------------
# true: a TLS proxy of the deployment's own stands in front, and only then are its
# X-Forwarded-Proto and X-Forwarded-For believed (console.client_ip).
BEHIND_PROXY = env.bool("BEHIND_PROXY", default=False)
# Console and admin logins: 5 failures for one account or 20 from one address within
# 15 minutes lock that account or address out for 15 minutes (429). Counted on the cache
# above, so on Redis every web process shares the count (console.login_limits).
LOGIN_FAILURES_PER_ACCOUNT = 5
LOGIN_FAILURES_PER_ADDRESS = 20
AXES_HANDLER = "console.login_limits.LoginLockoutHandler"
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_FAILURE_LIMIT = LOGIN_FAILURES_PER_ACCOUNT
# The handler decides a lockout before authenticating (both limits); the failure that
# reaches a limit is answered as any failure, and the next attempt gets the 429.
AXES_LOCK_OUT_AT_FAILURE = False
AXES_COOLOFF_TIME = 0.25  # hours
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "console.client_ip.client_ip"
AXES_USERNAME_CALLABLE = "console.login_limits.login_username"
AXES_LOCKOUT_CALLABLE = "console.login_limits.lockout_response"
AXES_VERBOSE = False
# The cache keeps no rows to show; the counts are not an admin page.
AXES_ENABLE_ADMIN = False

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "console.api_auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["console.api_auth.HasTenant"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["console.api_parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "console.api_errors.exception_handler",
    "COERCE_DECIMAL_TO_STRING": True,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_THROTTLE_CLASSES": (
        ["console.api_throttle.ApiKeyRateThrottle"] if API_RATE_LIMIT else []
    ),
    "DEFAULT_THROTTLE_RATES": {"api_key": API_RATE_LIMIT or None},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Field Console API",
    "DESCRIPTION": "Per-device video-stream licenses for remote operation: devices, cameras, "
    "licenses, entitlement and control sessions.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Tag operations by resource (devices, cameras, …) rather than by the version prefix.
    "SCHEMA_PATH_PREFIX": r"/api/v[0-9]+",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# --- Staff two-factor sign-in (CONTRACT "More settings") --------------------------------
# Production (DEBUG off) asks every staff user for a TOTP code before the admin opens;
# `make run` (DEBUG on) lets the demo staff login straight in unless this is set.
STAFF_2FA_REQUIRED = env.bool("STAFF_2FA_REQUIRED", default=not DEBUG)
OTP_TOTP_ISSUER = "Field Console"

# --- HTTPS, proxies and security headers ----------------------------------------------
# With DEBUG off, cookies are HTTPS only and HSTS lasts a year; the test runner keeps plain
# HTTP. Redirecting plain HTTP is the TLS proxy's job (the compose file's Caddy does it) and
# is set with SECURE_SSL_REDIRECT=true where Django itself faces clients: on by default it
# would turn every gateway call that reaches gunicorn directly (a health probe, a sidecar,
# the benchmarks' plain-HTTP method) into a 301.
_HTTPS_ONLY = not DEBUG and not TESTING
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
# The container's health check asks over plain HTTP from inside the host.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if _HTTPS_ONLY else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=_HTTPS_ONLY)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=_HTTPS_ONLY)
if BEHIND_PROXY:
    # Only a proxy of the deployment's own may say the client used HTTPS: without one,
    # any client reaching gunicorn could claim it.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Content-Security-Policy (django-csp) on every page: scripts only from this origin's
# files, never inline or eval'd (the admin ships its scripts as files; the API docs use
# drf-spectacular's split Swagger view). Inline styles stay allowed: Swagger UI and a few
# templates set them, and they cannot run code. The JSON API under /api/v1/ is no page and
# gets none (console.content_security); the API docs (/api/docs/) keep it.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# Permissions-Policy (django-permissions-policy): no page here needs a device's sensors.
PERMISSIONS_POLICY = {
    feature: []
    for feature in (
        "accelerometer",
        "camera",
        "display-capture",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "midi",
        "payment",
        "usb",
        "serial",
        "bluetooth",
        "hid",
        "browsing-topics",
    )
}
