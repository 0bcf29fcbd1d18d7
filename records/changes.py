"""Save and delete records through one path: fill in the DN, keep the schedule in step, audit the change.

Every entry point that changes a record — the UI, the Django admin, import, the CLI, the API, the
demo — calls these, so rescheduling and the audit trail cannot drift apart between them.
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import ValidationError
from django.db import transaction

from audit import events
from audit.actors import SYSTEM_ACTOR, Actor
from records import repoint
from records.models import (
    SCHEDULE_FIELDS,
    WINDOW_FIELDS,
    PamConfiguration,
    PamDirectory,
    PamUser,
    RotationType,
    _related,
    _same_record,
)

# Changing one of these on a configuration moves the next rotation of its users.
RESCHEDULING_FIELDS = frozenset({*SCHEDULE_FIELDS, *WINDOW_FIELDS, "rotation_enabled"})


def announce(instance, action: str, *, actor: Actor = SYSTEM_ACTOR, changed=()):
    """Record in the audit log that a record changed (``actor`` did it), naming fields, never values."""
    events.record_change(instance, action, actor=actor, changed=changed)


# How a missing DN is found from the login: rotation registers its directory search (RotationConfig.ready),
# so records never imports it. The lookup returns the DN ("" when it cannot look now) or raises ValidationError.
DN_LOOKUP: list[Callable[[PamUser, PamDirectory], str]] = []


def register_dn_lookup(lookup: Callable[[PamUser, PamDirectory], str]) -> None:
    """Set the function that finds an account's DN from its login on a directory."""
    DN_LOOKUP[:] = [lookup]


def fill_in_dn(user: PamUser) -> None:
    """Find a rotated user's missing DN from its login (Keeper needs none); raise ValidationError naming the field.

    The save path's first step: entry points call it (or ``validate``) before ``full_clean()``, which then
    only checks that a user that rotates has a DN.
    """
    resource = _related(user, "resource")
    if user.distinguished_name.strip() or resource is None or not DN_LOOKUP:
        return
    if user.rotation_type == RotationType.SCRIPTS_ONLY or not _same_record(
        _related(resource, "configuration"), _related(user, "configuration")
    ):
        return  # nothing to look up, or clean() reports the mismatch
    try:
        found = DN_LOOKUP[0](user, resource)
    except ValidationError as exc:
        raise ValidationError({"distinguished_name": exc.messages}) from None
    if found:
        user.distinguished_name = found


def validate(instance, **full_clean_options) -> None:
    """Run the save path's derived steps (a user's DN) and then the model's full_clean()."""
    if isinstance(instance, PamUser):
        fill_in_dn(instance)
    instance.full_clean(**full_clean_options)


def reschedule(instance, changed=None) -> None:
    """Keep next_rotation_at in step after a save; ``changed`` None means "anything may have changed"."""
    if isinstance(instance, PamUser):
        instance.reschedule()
    elif isinstance(instance, PamConfiguration) and (changed is None or RESCHEDULING_FIELDS & set(changed)):
        instance.reschedule_users()


def save_record(
    instance,
    *,
    created: bool,
    changed=None,
    actor: Actor = SYSTEM_ACTOR,
    announced_fields=None,
    proof: repoint.Proof | None = None,
) -> None:
    """Save a validated record, move its schedule, and announce the change, in one transaction.

    ``changed`` names the fields that changed (None: unknown, reschedule anyway); the audit event
    lists ``announced_fields`` when given (the admin tags its fields), else ``changed``. A save that
    sends a stored credential somewhere new needs ``proof`` (records.repoint; RepointRefused).
    """
    with transaction.atomic():
        repointed = repoint.check(instance, proof)
        instance.save()
        reschedule(instance, changed)
        announce(
            instance,
            "created" if created else "updated",
            actor=actor,
            changed=[
                *(announced_fields if announced_fields is not None else (changed or ())),
                *([repoint.describe(repointed)] if repointed else []),  # before and after, never a secret
            ],
        )


def delete_record(instance, *, actor: Actor = SYSTEM_ACTOR) -> None:
    """Delete a record and announce it; raises ProtectedError (nothing deleted) while others refer to it."""
    with transaction.atomic():
        pk = instance.pk
        instance.delete()
        instance.pk = pk  # the audit event names the record that was deleted
        announce(instance, "deleted", actor=actor)
