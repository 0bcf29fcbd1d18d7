"""Save and delete records through one path: keep the schedule in step and announce the change.

Every entry point that changes a record — the UI, the Django admin, import, the CLI, the API, the
demo — calls these, so rescheduling and the audit trail cannot drift apart between them.
"""

from __future__ import annotations

from django.db import transaction

from records.models import SCHEDULE_FIELDS, WINDOW_FIELDS, PamConfiguration, PamUser
from records.signals import record_changed

# Changing one of these on a configuration moves the next rotation of its users.
RESCHEDULING_FIELDS = frozenset({*SCHEDULE_FIELDS, *WINDOW_FIELDS, "rotation_enabled"})


def announce(instance, action: str, *, actor=None, actor_name: str = "", remote_address=None, changed=()):
    """Tell other apps (the audit log) that a record changed, naming fields, never values."""
    if actor is not None and not actor_name:
        actor_name = actor.get_username()
    record_changed.send(
        sender=type(instance),
        instance=instance,
        action=action,
        actor=actor,
        actor_name=actor_name,
        remote_address=remote_address,
        changed=list(changed),
    )


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
    actor=None,
    actor_name: str = "",
    remote_address: str | None = None,
    announced_fields=None,
) -> None:
    """Save a validated record, move its schedule, and announce the change, in one transaction.

    ``changed`` names the fields that changed (None: unknown, reschedule anyway); the audit event
    lists ``announced_fields`` when given (the admin tags its fields), else ``changed``.
    """
    with transaction.atomic():
        instance.save()
        reschedule(instance, changed)
        announce(
            instance,
            "created" if created else "updated",
            actor=actor,
            actor_name=actor_name,
            remote_address=remote_address,
            changed=announced_fields if announced_fields is not None else (changed or ()),
        )


def delete_record(instance, *, actor=None, actor_name: str = "", remote_address: str | None = None) -> None:
    """Delete a record and announce it; raises ProtectedError (nothing deleted) while others refer to it."""
    with transaction.atomic():
        pk = instance.pk
        instance.delete()
        instance.pk = pk  # the audit event names the record that was deleted
        announce(instance, "deleted", actor=actor, actor_name=actor_name, remote_address=remote_address)
