"""Who may do what with records: one place for the permission checks the views make."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db import models

# What each action on a record needs; Keeper's "view records" / "configure rotation settings".
ACTIONS = {"view": "view", "create": "add", "edit": "change", "delete": "delete"}


def permission_for(model: type[models.Model], action: str) -> str:
    """Return the permission name an action on a record type needs, e.g. records.change_pamuser."""
    return f"{model._meta.app_label}.{ACTIONS[action]}_{model._meta.model_name}"


def can(user, model: type[models.Model], action: str) -> bool:
    """Return whether a signed-in user may do an action on a record type."""
    return user.is_authenticated and user.has_perm(permission_for(model, action))


def require(user, model: type[models.Model], action: str) -> None:
    """Raise PermissionDenied unless the user may do the action on the record type."""
    if not can(user, model, action):
        raise PermissionDenied(f"You may not {action} {model._meta.verbose_name_plural}.")


def require_any_view(user, models_: list[type[models.Model]]) -> None:
    """Raise PermissionDenied unless the user may view at least one of the record types."""
    if not any(can(user, model, "view") for model in models_):
        raise PermissionDenied("You may not view records.")
