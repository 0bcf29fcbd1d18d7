"""pamrotate settings: one file, every value from the environment, secure by default.

Modes (``PAMROTATE_MODE``):
- ``production`` (the default): a missing ``PAMROTATE_SECRET_KEY`` or encryption key stops start-up.
- ``dev``: keys the environment does not give are read from files in the data directory.

Importing this module only computes values: it creates no file and prints nothing. The entry points
run ``pamrotate.startup.prepare()`` first, which creates the data directory and the dev keys.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from pamrotate import paths
from pamrotate.directory_signin import settings_from_environment

BASE_DIR = paths.BASE_DIR


def env_str(name: str, default: str = "") -> str:
    """Return an environment variable, or the default when it is unset or empty."""
    return os.environ.get(name, "") or default


def env_bool(name: str, default: bool = False) -> bool:
    """Return an environment variable read as a boolean (1/true/yes/on)."""
    value = os.environ.get(name, "")
    if not value:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def env_int(name: str, default: int) -> int:
    """Return an environment variable read as an integer."""
    value = os.environ.get(name, "")
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None


def env_proxy_count(name: str) -> int:
    """Return how many trusted proxies an environment variable names: a number, or on (1) / off (0)."""
    value = os.environ.get(name, "").strip().lower()
    if value.isdigit():
        return int(value)
    return 1 if env_bool(name, False) else 0


def env_list(name: str, default: str = "") -> list[str]:
    """Return a comma-separated environment variable as a list."""
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def env_secret(name: str) -> str:
    """Return a secret from NAME, or from the file named by NAME_FILE."""
    if os.environ.get(name):
        return os.environ[name]
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {path}: {exc.strerror}") from None
    return ""


def dev_secret_file(path: Path) -> str:
    """Return the secret in a dev-mode file that start-up (pamrotate/startup.py) wrote."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise ImproperlyConfigured(
            f"{path} does not exist: in dev mode manage.py creates it when it starts "
            "(pamrotate.startup.prepare), or set PAMROTATE_SECRET_KEY"
        ) from None
    except OSError as exc:
        raise ImproperlyConfigured(f"cannot read {path}: {exc.strerror}") from None


MODE = env_str("PAMROTATE_MODE", "production")
if MODE not in ("production", "dev"):
    raise ImproperlyConfigured("PAMROTATE_MODE must be 'production' or 'dev'")
PRODUCTION = MODE == "production"
DEBUG = env_bool("PAMROTATE_DEBUG", False)
# The data directory holds the database (sessions, secrets' ciphertexts), dev keys and the cache;
# start-up creates it private to the service's user (0700), in every mode.
DATA_DIR = paths.data_dir()

SECRET_KEY = env_secret("PAMROTATE_SECRET_KEY")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured(
            "PAMROTATE_SECRET_KEY (or PAMROTATE_SECRET_KEY_FILE) is required in production mode; "
            "set PAMROTATE_MODE=dev to have one created for local use."
        )
    SECRET_KEY = dev_secret_file(paths.secret_key_file())

# Encryption keys for secrets at rest (see pamrotate/crypto.py). The first key encrypts; all decrypt.
# PAMROTATE_ENCRYPTION_KEY_FILE stays a file (not read into ENCRYPTION_KEYS like other _FILE
# secrets) so that rotate_encryption_key can rewrite it and running workers reload it.
ENCRYPTION_KEYS = env_str("PAMROTATE_ENCRYPTION_KEY")
ENCRYPTION_KEY_FILE = env_str("PAMROTATE_ENCRYPTION_KEY_FILE")
# Checked at every start (crypto.check_keys): the keys must decrypt what they encrypted before.
ENCRYPTION_CANARY_FILE = DATA_DIR / "encryption.canary"
if ENCRYPTION_KEYS and ENCRYPTION_KEY_FILE:
    raise ImproperlyConfigured("set PAMROTATE_ENCRYPTION_KEY or PAMROTATE_ENCRYPTION_KEY_FILE, not both")
if not ENCRYPTION_KEYS and not ENCRYPTION_KEY_FILE:
    if PRODUCTION:
        raise ImproperlyConfigured(
            "PAMROTATE_ENCRYPTION_KEY or PAMROTATE_ENCRYPTION_KEY_FILE is required in production "
            "mode; generate one with: python -c 'import os,base64;"
            "print(base64.urlsafe_b64encode(os.urandom(32)).decode())'"
        )
    ENCRYPTION_KEY_FILE = str(paths.encryption_key_file())

ALLOWED_HOSTS = env_list("PAMROTATE_ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("PAMROTATE_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "crispy_forms",
    "crispy_bootstrap5",
    "audit.apps.AuditConfig",
    "records.apps.RecordsConfig",
    "rotation.apps.RotationConfig",
    "scripts.apps.ScriptsConfig",
    # After rotation: rotation's `qcluster` (rotation/worker.py) replaces django-q2's own.
    "django_q",
    "django_otp",
    "axes",
    "accounts.apps.AccountsConfig",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "api.apps.ApiConfig",
    "ops.apps.OpsConfig",
    "access.apps.AccessConfig",
]

MIDDLEWARE = [
    "pamrotate.middleware.ClientAddressMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "pamrotate.middleware.ContentSecurityPolicyMiddleware",
    # Vault's /v1/ paths (a token, never a session) are answered here, without the browser's middleware.
    "api.vault_http.VaultPathMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.timezones.TimeZoneMiddleware",  # the viewer's zone for every time shown
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "accounts.sessions.SessionRulesMiddleware",
    "accounts.middleware.RequireMfaMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "pamrotate.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "accounts.context_processors.policy",  # after auth: ``perms`` asks the one policy
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "pamrotate.wsgi.application"


def database_settings() -> dict:
    """Return the default database: SQLite in the data directory unless DATABASE_URL names one."""
    url = env_str("DATABASE_URL")
    if url and not url.startswith(("postgres://", "postgresql://", "sqlite:///")):
        raise ImproperlyConfigured("DATABASE_URL must start with postgresql:// or sqlite:///")
    # Keep a worker's connection: opening one (functions, PRAGMAs) costs more than a read.
    database = (
        dj_database_url.parse(url, conn_max_age=60)
        if url  # the data directory's path is used as it is, never read as a URL
        else {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(paths.default_database_file()),  # start-up creates it 0600
            "CONN_MAX_AGE": 60,
        }
    )
    if database["ENGINE"] != "django.db.backends.sqlite3":
        return database
    return {
        **database,
        "OPTIONS": {
            # Without IMMEDIATE and WAL, concurrent workers lose writes to "database is locked".
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }


DATABASES = {"default": database_settings()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("PAMROTATE_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "records:dashboard"
LOGOUT_REDIRECT_URL = "login"

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

# The monitoring pages of django-q2 (qinfo) and the login rate limit need a cache that every
# process shares: a file cache on one host, Redis when REDIS_URL is set.
if env_str("REDIS_URL"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": env_str("REDIS_URL"),
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(DATA_DIR / "cache"),
        }
    }

# Security headers and cookies. HTTPS settings follow PAMROTATE_HTTPS (on in production).
HTTPS = env_bool("PAMROTATE_HTTPS", PRODUCTION)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS and env_bool("PAMROTATE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = env_int("PAMROTATE_HSTS_SECONDS", 31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
# PAMROTATE_BEHIND_PROXY: how many proxies in front of pamrotate append to X-Forwarded-For
# (1/on = one); only then X-Forwarded-Proto and X-Forwarded-For are believed.
BEHIND_PROXY_COUNT = env_proxy_count("PAMROTATE_BEHIND_PROXY")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_PROXY_COUNT else None
SESSION_COOKIE_HTTPONLY = True
# A session ends after PAMROTATE_SESSION_IDLE_MINUTES without a request, and at the latest
# PAMROTATE_SESSION_ABSOLUTE_HOURS after sign-in (accounts/sessions.py).
SESSION_IDLE_MINUTES = env_int("PAMROTATE_SESSION_IDLE_MINUTES", 30)
SESSION_ABSOLUTE_HOURS = env_int("PAMROTATE_SESSION_ABSOLUTE_HOURS", 8)
SESSION_COOKIE_AGE = SESSION_ABSOLUTE_HOURS * 3600
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)

# Sign-in (accounts/): local accounts, the directory, django-axes lock-outs, the second factor.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # refuses a locked-out user name first
    "django.contrib.auth.backends.ModelBackend",  # local accounts (break-glass)
    "accounts.backends.DirectoryBackend",  # directory accounts, when PAMROTATE_LDAP_URL is set
]
# Operators, Administrators and superusers must enrol a second factor; reveal, rotate, import
# and token creation need a verified session. On in production mode, off in dev mode.
REQUIRE_MFA = env_bool("PAMROTATE_REQUIRE_MFA", PRODUCTION)
SIGNIN_FAILURE_LIMIT = env_int("PAMROTATE_SIGNIN_FAILURE_LIMIT", 5)
SIGNIN_ADDRESS_FAILURE_LIMIT = env_int("PAMROTATE_SIGNIN_ADDRESS_FAILURE_LIMIT", 20)
SIGNIN_LOCKOUT_MINUTES = env_int("PAMROTATE_SIGNIN_LOCKOUT_MINUTES", 15)
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = "accounts.signin.failure_limit"
AXES_LOCKOUT_PARAMETERS = "accounts.signin.lockout_parameters"
AXES_USERNAME_CALLABLE = "accounts.signin.axes_username"
AXES_CLIENT_IP_CALLABLE = "accounts.signin.client_address"
AXES_LOCKOUT_CALLABLE = "accounts.views.lockout_response"
AXES_COOLOFF_TIME = dt.timedelta(minutes=SIGNIN_LOCKOUT_MINUTES)
AXES_RESET_ON_SUCCESS = True
# A refused attempt does not extend the lock: an attacker cannot keep a person out forever.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_HTTP_RESPONSE_CODE = 429
# Directory sign-in: AUTH_LDAP_* from PAMROTATE_LDAP_* (README "Sign-in"); plain LDAP is refused here.
globals().update(settings_from_environment(os.environ, env_secret))

# Rotation.
ROTATION_LEASE_SECONDS = env_int("PAMROTATE_ROTATION_LEASE_SECONDS", 300)
PASSWORD_HISTORY_DEPTH = env_int("PAMROTATE_PASSWORD_HISTORY_DEPTH", 10)
REVEAL_SECONDS = env_int("PAMROTATE_REVEAL_SECONDS", 30)
LDAP_CONNECT_TIMEOUT = env_int("PAMROTATE_LDAP_CONNECT_TIMEOUT", 5)
LDAP_OPERATION_TIMEOUT = env_int("PAMROTATE_LDAP_OPERATION_TIMEOUT", 15)
# Post-rotation scripts (scripts/): files on the worker's host, never uploaded through the web.
SCRIPTS_DIR = Path(env_str("PAMROTATE_SCRIPTS_DIR", str(DATA_DIR / "scripts")))
SCRIPT_TIMEOUT = env_int("PAMROTATE_SCRIPT_TIMEOUT", 60)
# The unprivileged OS user scripts run as (useradd --system --no-create-home pamrotate-script).
SCRIPT_USER = env_str("PAMROTATE_SCRIPT_USER")

# django-q2 (DESIGN.md §4). Task arguments and results are stored pickled and unencrypted:
# tasks take record ids only. retry must exceed (1 + ceil((queue_limit + 1) / workers)) x timeout,
# here (1 + ceil(5 / 2)) x 120 = 480 s, or a slow task is handed to a second worker.
Q_WORKERS = env_int("PAMROTATE_WORKERS", 2)
Q_TIMEOUT = 120
Q_QUEUE_LIMIT = 4
Q_CLUSTER = {
    # Every cluster shares this name (it keys the task payloads). A gateway's workers run as
    # `Q_CLUSTER_NAME=<gateway> manage.py qcluster` and take only that gateway's queue.
    "name": "default",
    "ALT_CLUSTERS": {},
    "orm": "default",
    "workers": Q_WORKERS,
    "timeout": Q_TIMEOUT,
    "retry": (1 + -(-(Q_QUEUE_LIMIT + 1) // Q_WORKERS)) * Q_TIMEOUT + 120,
    "queue_limit": Q_QUEUE_LIMIT,
    "max_attempts": 1,  # our own attempt counter decides retries, not the broker
    "ack_failures": True,
    "catch_up": False,
    "save_limit": 1000,
    "poll": 0.5,
    "sync": env_bool("PAMROTATE_Q_SYNC", False),
    "label": "Background tasks",
    # The ORM broker, whose pusher retries a failed pull and, after BROKER_FAILURE_SECONDS of
    # failures, stops the cluster with one error instead of being reincarnated forever.
    "broker_class": "rotation.broker.Broker",
}
# The worker's health (rotation/worker.py, rotation/status.py): every WORKER_CANARY_SECONDS the
# dispatcher sends each gateway a canary task; a gateway whose canary or queued attempt waited
# WORKER_STALL_SECONDS with no task taken is named by /healthz (503), the dashboard and the pages.
WORKER_CANARY_SECONDS = env_int("PAMROTATE_WORKER_CANARY_SECONDS", 30)
WORKER_STALL_SECONDS = env_int("PAMROTATE_WORKER_STALL_SECONDS", 60)
# SIGTERM: running tasks get this long to finish, then the cluster's processes are killed.
WORKER_STOP_GRACE_SECONDS = env_int("PAMROTATE_WORKER_STOP_GRACE_SECONDS", 20)
BROKER_FAILURE_SECONDS = env_int("PAMROTATE_BROKER_FAILURE_SECONDS", 30)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("PAMROTATE_LOG_LEVEL", "INFO")},
    "loggers": {
        # ldap3 can log whole requests (with passwords) at its debug levels: keep it quiet.
        "ldap3": {"level": "WARNING"},
        # django-q2 logs four INFO lines every 30 s, and axes one per command start and sign-in: they
        # buried the one-time admin password and every CLI answer. Our own loggers stay at INFO.
        "django-q": {"level": env_str("PAMROTATE_Q_LOG_LEVEL", "WARNING")},
        "axes": {"level": "WARNING"},
    },
}

EMAIL_BACKEND = env_str("PAMROTATE_EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("PAMROTATE_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("PAMROTATE_EMAIL_PORT", 25)
DEFAULT_FROM_EMAIL = env_str("PAMROTATE_EMAIL_FROM", "pamrotate@localhost")

# The API (api/): Django REST framework, its OpenAPI schema, and Vault's static-cred path.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.authentication.BearerTokenAuthentication",
        # A browser's session works too; DRF enforces CSRF on its unsafe methods.
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["api.parsers.LimitedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_THROTTLE_CLASSES": ["api.throttles.TokenRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"token": env_str("PAMROTATE_API_RATE", "120/minute")},
    "DEFAULT_PAGINATION_CLASS": "api.pagination.IdCursorPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "api.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
# The largest JSON body the API parses; a larger one is answered 400.
API_MAX_BODY_BYTES = env_int("PAMROTATE_API_MAX_BODY_BYTES", 64 * 1024)
SPECTACULAR_SETTINGS = {
    "TITLE": "pamrotate API",
    "DESCRIPTION": "Records, rotations, credentials and the audit log of pamrotate.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No badge from the online validator: the docs load nothing from outside.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # Two choice sets name a field `state`: an attempt's and an access request's.
    "ENUM_NAME_OVERRIDES": {"RequestStateEnum": "access.models.RequestState"},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.schema.describe_errors_and_rules",  # error answers, the models' value rules
        "api.schema.vault_paths",  # the Vault-compatible /v1/ paths
    ],
}
# Vault's LDAP secrets engine path: GET /v1/<mount>/static-cred/<name>.
VAULT_MOUNT = env_str("PAMROTATE_VAULT_MOUNT", "ldap")
# The longest ttl a static-cred answer gives: readers come back at least this often (seconds).
VAULT_MAX_TTL = env_int("PAMROTATE_VAULT_MAX_TTL", 300)

# Audit retention: events and finished attempts older than this many days may be purged by
# `manage.py purge_audit`; 0 keeps them forever.
AUDIT_RETENTION_DAYS = env_int("PAMROTATE_AUDIT_RETENTION_DAYS", 0)
# Where failure and overdue notifications go (comma-separated); empty sends none.
NOTIFY_EMAIL_TO = env_list("PAMROTATE_NOTIFY_EMAIL_TO")
