"""Signals records send so that other apps (audit) can follow changes without records knowing them."""

from django.dispatch import Signal

# Sent after a record is created, updated or deleted through the UI or a command.
# Arguments: instance, action ("created" | "updated" | "deleted"), actor (a User or None),
# actor_name (str), remote_address (str or None), changed (list of field names, never values).
record_changed = Signal()

# Sent by PamUser.clean() when a user that its directory rotates has no DN (Keeper does not
# require one). Arguments: instance (the PamUser), directory (its PamDirectory). A receiver
# returns the DN found from the login ("" when it cannot look now), or raises ValidationError
# (no such account, several, or the directory cannot be asked while rotation is on).
lookup_dn = Signal()
