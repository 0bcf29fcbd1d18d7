"""Write audit events: one function for everything that happens, no secret in any of them."""

from __future__ import annotations

from django.dispatch import receiver

from records.signals import record_changed
from rotation.models import AuditEvent

RECORD_EVENTS = {
    "created": AuditEvent.RECORD_CREATED,
    "updated": AuditEvent.RECORD_UPDATED,
    "deleted": AuditEvent.RECORD_DELETED,
}


def record_event(
    event: str,
    *,
    instance=None,
    actor=None,
    actor_name: str = "",
    remote_address: str | None = None,
    outcome: str = "",
    message: str = "",
    attempt_id: int | None = None,
    category: str = "record",
) -> AuditEvent:
    """Append one audit event about a record."""
    if actor is not None and not actor.is_authenticated:
        actor = None
    return AuditEvent.objects.create(
        event=event,
        category=category,
        outcome=outcome,
        actor=actor,
        actor_name=actor_name or (actor.get_username() if actor else ""),
        remote_address=remote_address or None,
        record_type=instance._meta.model_name if instance is not None else "",
        record_id=instance.pk if instance is not None else None,
        record_title=str(instance)[:200] if instance is not None else "",
        attempt_id=attempt_id,
        message=message[:1000],
    )


@receiver(record_changed)
def audit_record_change(
    sender, instance, action, actor=None, actor_name="", remote_address=None, changed=(), **kwargs
):
    """Record a create, update or delete of a PAM record, naming changed fields, never values."""
    message = f"{instance._meta.verbose_name} {action}"
    if changed:
        message += ": " + ", ".join(sorted(changed))
    record_event(
        RECORD_EVENTS[action],
        instance=instance,
        actor=actor,
        actor_name=actor_name,
        remote_address=remote_address,
        outcome="ok",
        message=message,
    )
