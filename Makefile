# pamrotate: `make run` sets up and runs the app; `make test` installs what the tests need and runs them.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# python-ldap (django-auth-ldap's client) has no wheel: it builds against these headers.
BUILD_PACKAGES := libldap2-dev libsasl2-dev
APT_PACKAGES := slapd ldap-utils samba samba-dsdb-modules samba-vfs-modules samba-ad-provision openssl chromium iproute2 postgresql oathtool wrk prometheus rsyslog rsyslog-gnutls $(BUILD_PACKAGES)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test demo venv dev-venv apt lint check pytest test-fast clean

$(VENV)/.installed: requirements.txt
	@dpkg -s $(BUILD_PACKAGES) >/dev/null 2>&1 || $(MAKE) apt APT_PACKAGES="$(BUILD_PACKAGES)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed
dev-venv: $(VENV)/.installed-dev

# The local mode for the README's `python manage.py ...` lines too (after `make run` and `make demo`):
# manage.py loads .env (the environment wins). Written once, mode 0600, never overwritten (set -C).
.env:
	@set -C; umask 077; printf '# written by make run or make demo: manage.py reads it\nPAMROTATE_MODE=dev\nPAMROTATE_HTTPS=0\n' > $@
	@echo "wrote $@: manage.py commands now run in the local dev mode"

# Embedded default: SQLite + django-q2's ORM broker; the web server and the worker run together.
run: export PAMROTATE_MODE ?= dev
run: export PAMROTATE_HTTPS ?= 0
run: venv .env
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py ensure_admin
	@[ -n "$$PAMROTATE_SCRIPT_USER" ] || grep -qs '^PAMROTATE_SCRIPT_USER=.' .env || echo "WARNING: PAMROTATE_SCRIPT_USER is not set: post-rotation scripts would run as $$(id -un) (dev mode only; production refuses). Give them their own user: sudo useradd --system --no-create-home pamrotate-script, then add PAMROTATE_SCRIPT_USER=pamrotate-script to .env (README: Post-rotation scripts)."
	$(PY) manage.py serve --host $(HOST) --port $(PORT)

# A local slapd with sample accounts, a configuration, directory and users pointing at it, and the app.
demo: export PAMROTATE_MODE ?= dev
demo: export PAMROTATE_HTTPS ?= 0
demo: dev-venv .env
	@command -v slapd >/dev/null || $(MAKE) apt
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py ensure_admin
	$(PY) manage.py demo --host $(HOST) --port $(PORT)

# Debian packages the tests need: real slapd and Samba AD DC servers, and Chromium for Playwright.
apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  apt-get update -q; \
	  echo "slapd slapd/no_configuration boolean true" | debconf-set-selections; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

lint: dev-venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

check: dev-venv
	PAMROTATE_MODE=dev DJANGO_SETTINGS_MODULE=tests.settings $(PY) manage.py check
	PAMROTATE_MODE=dev DJANGO_SETTINGS_MODULE=tests.settings $(PY) manage.py makemigrations --check --dry-run

# The whole suite on PYTEST_WORKERS pytest-xdist workers; the tests of one expensive server (Samba,
# PostgreSQL) share a worker, so each is provisioned once (XDIST_GROUPS in tests/conftest.py).
PYTEST_WORKERS ?= 3
FAST_WORKERS ?= 2
XDIST := -n $(PYTEST_WORKERS) --dist loadgroup
# The unit layer: no real server, browser, live server or process of its own (the markers follow the
# fixtures a test uses and what its source starts: tests/conftest.py).
FAST := not (slapd or samba or postgres or browser or live_server or process)

pytest: dev-venv
	@command -v npm >/dev/null || $(MAKE) apt APT_PACKAGES=npm; npm ci --prefix tests/browser --no-audit --no-fund --silent  # axe-core for test_accessibility
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

# The unit layer is CPU-bound: one worker per core (55 s here; 63 s on 3 workers).
test-fast: dev-venv
	$(PY) -m pytest -n $(FAST_WORKERS) --dist loadgroup -m "$(FAST)" $(PYTEST_ARGS)

test: apt dev-venv lint check pytest

clean:
	rm -rf $(VENV) data test-artifacts .pytest_cache .ruff_cache
