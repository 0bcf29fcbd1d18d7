"""The account heartbeat: does each stored password still open its account? Never lock anyone out finding out.

A bind with a password the directory no longer has counts as a bad password (AD's and Samba's
``badPwdCount``, OpenLDAP ppolicy's ``pwdFailureTime``), and enough of them lock the account. So
a check first reads the account's state with the administrative credential:

1. disabled, locked or expired (AD ``userAccountControl``, ``lockoutTime``, ``accountExpires``
   and the computed flags; OpenLDAP ``pwdAccountLockedTime``): reported, no bind;
2. the password was set on the directory after pamrotate last stored it (AD ``pwdLastSet``,
   OpenLDAP ``pwdChangedTime``, beyond ``TOLERANCE``): *drifted*, no bind;
3. only otherwise a bind with the stored password: success is *ok*, a refusal is *drifted* —
   and a password that was refused once is never tried again until pamrotate stores another,
   and on AD no bind happens when one more bad password would reach the domain's lock-out
   threshold (``badPwdCount`` + 1 ≥ ``lockoutThreshold``).

"When pamrotate last stored it" is the last rotation; for an account never rotated, the last
time its record was saved (the password typed or imported then, or earlier: a later save only
makes the check bind rather than call it drifted). The state is stored on the account; each
change is an audit event and, for a problem or a recovery from one, a mail.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from audit import events as audit
from audit.actors import Actor
from audit.models import AuditEvent, Category, Outcome
from records.models import AccountState, PamConfiguration, PamUser, RotationStatus, RotationType
from rotation import ldap, notifications, services
from rotation.directories import admin_bind_name, directory_spec
from rotation.models import Trigger

log = logging.getLogger(__name__)

# Clocks differ and a rotation's commit follows its change by a moment.
TOLERANCE = dt.timedelta(minutes=2)
# A queued check is not queued again for this long (the task may still be waiting for a worker).
QUEUED_FOR = 15 * 60
BATCH = 50
PROBLEM_STATES = (AccountState.DRIFTED, AccountState.DISABLED, AccountState.LOCKED, AccountState.EXPIRED)
HEARTBEAT = Actor.system("heartbeat")  # who the events and rotations of a check name
REFUSED = "the stored password no longer opens the account (changed outside pamrotate?)"


@dataclass(frozen=True)
class Finding:
    """What one check found (no secret in it)."""

    user_id: int
    state: str
    detail: str
    changed: bool = False

    def as_dict(self) -> dict:
        return {"user": self.user_id, "state": self.state, "detail": self.detail, "changed": self.changed}


def checkable():
    """Return the accounts a heartbeat can check: a directory rotates them and their DN is known."""
    return (
        PamUser.objects.filter(resource__isnull=False, rotation_type=RotationType.GENERAL)
        .exclude(distinguished_name="")
        .select_related("configuration", "resource__administrative_credential")
    )


def due(now: dt.datetime | None = None) -> list[int]:
    """Return the ids of accounts whose configuration has a heartbeat and whose last check is older than it."""
    now = now or timezone.now()
    ids: list[int] = []
    for configuration in PamConfiguration.objects.filter(heartbeat_hours__gt=0):
        cutoff = now - dt.timedelta(hours=configuration.heartbeat_hours)
        users = checkable().filter(configuration=configuration)
        users = users.filter(Q(account_state_at__isnull=True) | Q(account_state_at__lt=cutoff))
        ids += list(users.values_list("pk", flat=True))
    return ids


def queue_due(now: dt.datetime | None = None) -> int:
    """Send the due checks to their gateways' workers as id-only batches; return how many were sent."""
    from django_q.tasks import async_task

    by_gateway: dict[str, list[int]] = {}
    ids = due(now)
    gateways = dict(PamUser.objects.filter(pk__in=ids).values_list("pk", "configuration__gateway"))
    for user_id in ids:
        # cache.add is atomic: two dispatchers never queue the same account's check twice.
        if cache.add(f"pamrotate:heartbeat-queued:{user_id}", 1, QUEUED_FOR):
            by_gateway.setdefault(gateways.get(user_id) or "default", []).append(user_id)
    sent = 0
    for gateway, ids in by_gateway.items():
        for start in range(0, len(ids), BATCH):
            batch = ids[start : start + BATCH]
            async_task(
                "rotation.tasks.check_accounts",
                batch,
                cluster=gateway,
                task_name=f"heartbeat-{batch[0]}-{batch[-1]}",
                group="heartbeat",
            )
            sent += len(batch)
    return sent


def queue_check(user: PamUser) -> None:
    """Send one account's check to its gateway's workers now (the account page's Check now)."""
    from django_q.tasks import async_task

    gateway = user.configuration.gateway or "default"
    async_task("rotation.tasks.check_accounts", [user.pk], cluster=gateway, task_name=f"heartbeat-{user.pk}")


def check_many(user_ids: Iterable[int]) -> list[Finding]:
    """Check several accounts one after another."""
    users = checkable().filter(pk__in=list(user_ids)).order_by("pk")
    findings = []
    for user in users:
        findings.append(check(user))
        cache.delete(f"pamrotate:heartbeat-queued:{user.pk}")
    return findings


def check(user: PamUser, now: dt.datetime | None = None) -> Finding:
    """Find an account's state without risking a lock-out, store it, and announce a change."""
    now = now or timezone.now()
    if _rotating(user):
        return Finding(user.pk, user.account_state, "not checked: a rotation of this account is in progress")
    state, detail = observe(user)
    if state == AccountState.DRIFTED and detail == REFUSED:
        fresh = PamUser.objects.get(pk=user.pk)
        if fresh.password_encrypted != user.password_encrypted or _rotating(fresh):
            # A rotation changed the password while we looked: our refused bind says nothing.
            return Finding(user.pk, fresh.account_state, "not checked: the password changed during the check")
    return _store(user, state, detail, now)


def _rotating(user: PamUser) -> bool:
    return user.rotation_status in (RotationStatus.RUNNING, RotationStatus.UNKNOWN) or (
        user.lease_until is not None and user.lease_until > timezone.now()
    )


def stored_since(user: PamUser) -> dt.datetime | None:
    """Return when pamrotate last stored the account's password: its last rotation, else its record's last save."""
    return user.last_rotated_at or user.updated_at


@sensitive_variables()
def observe(user: PamUser) -> tuple[str, str]:
    """Return an account's state and a plain-language detail; bind as it only when nothing says it changed."""
    directory = user.resource
    try:
        spec = directory_spec(directory)
        admin_name, admin_password = admin_bind_name(directory)
        account = ldap.read_account(spec, admin_name, admin_password, user.distinguished_name)
    except ldap.DirectoryError as exc:
        return AccountState.UNREACHABLE, f"the account's state could not be read: {exc}"
    if account.enabled is False:
        return AccountState.DISABLED, "the account is disabled on the directory"
    if account.locked:
        return AccountState.LOCKED, "the account is locked out on the directory"
    if account.expired:
        return AccountState.EXPIRED, "the account has expired on the directory"
    if account.password_expired:
        return AccountState.EXPIRED, "the password has expired or must be changed at next sign-in"
    reference = stored_since(user)
    changed_at = account.password_last_set
    if changed_at is not None and reference is not None and changed_at > reference + TOLERANCE:
        what = "rotated it" if user.last_rotated_at else "stored it"
        return AccountState.DRIFTED, (
            f"the password was changed on the directory at {changed_at:%Y-%m-%d %H:%M} UTC, after pamrotate "
            f"{what} at {reference.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"
        )
    if not user.has_password:
        return AccountState.UNCHECKED, "no password is stored yet: the first rotation sets one"
    if (
        user.account_state == AccountState.DRIFTED
        and user.account_state_detail == REFUSED
        and user.account_state_at is not None
        and (reference is None or reference <= user.account_state_at)
    ):
        return AccountState.DRIFTED, REFUSED  # that password was refused once: never try it again
    if account.lockout_threshold and (account.bad_password_count or 0) + 1 >= account.lockout_threshold:
        return AccountState.UNCHECKED, (
            f"not checked: the account has {account.bad_password_count} recent bad passwords and the "
            f"domain locks it at {account.lockout_threshold}; one more could lock it out"
        )
    try:
        opens = ldap.verify_password(spec, user.distinguished_name, user.get_password())
    except ldap.DirectoryError as exc:
        return AccountState.UNREACHABLE, f"the stored password could not be checked: {exc}"
    if opens:
        return AccountState.OK, "the stored password opens the account"
    return AccountState.DRIFTED, REFUSED


def _store(user: PamUser, state: str, detail: str, now: dt.datetime) -> Finding:
    """Store a check's result (without touching updated_at); audit, mail and maybe rotate on a change."""
    previous = user.account_state
    detail = detail[: PamUser._meta.get_field("account_state_detail").max_length]
    PamUser.objects.filter(pk=user.pk).update(
        account_state=state, account_state_at=now, account_state_detail=detail
    )
    user.account_state, user.account_state_at, user.account_state_detail = state, now, detail
    if state == previous:
        return Finding(user.pk, state, detail)
    audit.record_event(
        AuditEvent.ACCOUNT_STATE_CHANGED,
        instance=user,
        actor=HEARTBEAT,
        outcome=Outcome.FAIL if state in PROBLEM_STATES else Outcome.OK,
        message=f"{AccountState(previous).label} → {AccountState(state).label}: {detail}",
        category=Category.HEARTBEAT,
    )
    if state in PROBLEM_STATES or previous in PROBLEM_STATES:
        notifications.notify_account_state(user, previous, detail)
    if state == AccountState.DRIFTED and user.configuration.rotate_when_drifted:
        attempt = services.request_rotation(user, trigger=Trigger.ON_DEMAND, actor=HEARTBEAT)
        log.info("heartbeat: account %s drifted, rotation attempt %s %s", user.pk, attempt.pk, attempt.state)
    return Finding(user.pk, state, detail, changed=True)
