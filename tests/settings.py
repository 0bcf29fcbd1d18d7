"""Settings for the test suite: dev mode, a throwaway data directory, django-q2 in sync mode."""

import base64
import os
import secrets
import tempfile

os.environ["PAMROTATE_MODE"] = "dev"
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Each pytest-xdist worker gets its own data directory (it would inherit the controller's).
    os.environ["PAMROTATE_DATA_DIR"] = tempfile.mkdtemp(
        prefix=f"pamrotate-test-{os.environ['PYTEST_XDIST_WORKER']}-"
    )
os.environ.setdefault("PAMROTATE_DATA_DIR", tempfile.mkdtemp(prefix="pamrotate-test-"))
os.environ.setdefault("PAMROTATE_SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("PAMROTATE_ENCRYPTION_KEY", base64.urlsafe_b64encode(os.urandom(32)).decode())
os.environ.setdefault("PAMROTATE_Q_SYNC", "1")
os.environ.setdefault("PAMROTATE_HTTPS", "0")
# Existing tests run without a second factor; a test that needs one turns REQUIRE_MFA on.
os.environ.setdefault("PAMROTATE_REQUIRE_MFA", "0")

from pamrotate.settings import *  # noqa: E402,F403
from pamrotate.settings import DATA_DIR, DATABASES, STATIC_ROOT  # noqa: E402

# A file, not memory, so that worker processes started by tests see the same test database.
DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Serve static files straight from static/ (no collectstatic in tests).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
