"""Checks at start: the keys decrypt the canary and what is stored; the key file is private.

Every process runs ``check_keys`` when it starts (manage.py, wsgi.py and asgi.py) and refuses to
start, naming what is wrong, when the keys cannot read what they wrote before.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.core import checks

from pamrotate.canary import check_canary, refusal
from pamrotate.envelope import DecryptionError
from pamrotate.keyring import KeyRing, key_file_path, ring

logger = logging.getLogger(__name__)


def encrypted_columns() -> Iterator[tuple[type, str]]:
    """Yield (model, field name) for every model field that holds a ciphertext."""
    from django.apps import apps

    for model in apps.get_models():
        for field in getattr(model, "encrypted_fields", ()):
            yield model, field


def check_stored_secrets(ring: KeyRing) -> None:
    """Decrypt the oldest and the newest stored secret of each encrypted column."""
    from django.db import DatabaseError, connections

    try:
        for model, field in encrypted_columns():
            rows = model._base_manager.exclude(**{field: ""}).exclude(**{f"{field}__isnull": True})
            for ordering in ("pk", "-pk"):
                row = rows.order_by(ordering).values_list("pk", field).first()
                if row is None:
                    break
                try:
                    ring.decrypt(row[1])
                except DecryptionError:
                    raise refusal(f"the stored {model._meta.verbose_name} #{row[0]}", row[1], ring) from None
    except DatabaseError:
        pass  # not migrated yet (or unreachable): there is nothing this process could read either
    finally:
        # A worker forks after this: no child may inherit the parent's connection.
        for connection in connections.all(initialized_only=True):
            if not connection.in_atomic_block:
                connection.close()


def check_keys() -> None:
    """Refuse to start (ImproperlyConfigured) unless the keys parse and decrypt the canary and stored secrets."""
    current = ring()
    check_canary(current)
    check_stored_secrets(current)
    for problem in key_file_problems():
        logger.warning("%s", problem)


def key_file_problems() -> list[str]:
    """Return what is unsafe about the key file: readable or writable by group or others."""
    path = key_file_path()
    try:
        mode = path.stat().st_mode & 0o777 if path is not None else 0
    except OSError:
        return []
    if mode & 0o077:
        return [
            f"the encryption key file {path} has mode {mode:04o}: other local users can read or "
            f"change it; run chmod 600 {path}"
        ]
    return []


# Registered here, with the rule they check: `check` warns, and `check --deploy` fails.
@checks.register(checks.Tags.security)
def check_key_file_mode(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """Warn when the encryption key file can be read by group or others."""
    return [checks.Warning(problem, id="pamrotate.W001") for problem in key_file_problems()]


@checks.register(checks.Tags.security, deploy=True)
def check_key_file_mode_deploy(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """Fail a deployment check when the encryption key file can be read by group or others."""
    return [checks.Error(problem, id="pamrotate.E001") for problem in key_file_problems()]
