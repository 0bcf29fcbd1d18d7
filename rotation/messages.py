"""What an attempt says when it does not simply succeed: every text of the rotation protocol, once.

Both drivers (one account: rotation/services.py, many: rotation/batch.py) end attempts through
rotation/protocol.py and the attempt's transitions (rotation/models.py), which take their texts
from here; tests compare against these names. Texts from the directory itself come from
rotation/ldap_errors.py. None of them carries a secret.
"""

from __future__ import annotations

# Requesting.
ALREADY_ROTATING = "Already rotating: rotation #{number} (attempt #{attempt}) is {state}."
SUPERSEDED = "Superseded by on-demand attempt #{attempt}."
NEVER_PICKED_UP = (
    'No worker of gateway "{gateway}" took this attempt within {minutes} minutes: is its qcluster running?'
)

# Claiming and checking.
LEASE_HELD = "Already rotating: another attempt holds this account."
STILL_UNRESOLVED = (
    "Attempt #{attempt} is still unresolved; pamrotate will not rotate again until it knows which "
    "password the account has."
)
NO_CHANGER = 'No plugin changes the passwords of "{rotation_type}" accounts: is it installed?'

# Changing and verifying.
SELF_CHANGE_NEEDS_PASSWORD = "a self-change needs the current password, and none is stored"  # noqa: S105
CHANGE_INTERRUPTED = "An unexpected error happened while changing the password."
NOT_VERIFIED = "The change was sent but could not be verified: {reason}"
DID_NOT_BIND = "The directory accepted the change but the new password did not bind."

# Unexpected errors and dead workers.
INTERRUPTED = "An unexpected error interrupted the rotation; it will be reconciled."
INTERNAL = "An internal error ({error}) stopped the rotation."
WORKER_STOPPED = "The worker stopped during the rotation."

# Committing.
RECONCILED = "Reconciled: the new password opens the account and is now stored."
# The account's state detail after a rotation set the password of a drifted account.
ROTATED_OVER_DRIFT = "the rotation set a new password: pamrotate's copy is current again"

# Reconciling.
NOTHING_WRITTEN = "Interrupted before a new password was generated; nothing was changed."
STORED_STILL_OPENS = (
    "the directory is unreachable at {host}:{port} or the rotation was interrupted during the change; "
    "the change did not take effect and the stored password still opens the account"
)
NEITHER_OPENS = (
    "Neither the pending nor the stored password opens the account. Both are kept; an administrator "
    "must check the account."
)
NOT_ASKED = "Outcome unknown; the directory could not be asked: {reason} pamrotate will try again."
