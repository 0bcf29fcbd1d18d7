"""Check-out and check-in, approvals, break-glass and rotate after use: every entry point calls these.

Each function asks the one access policy (accounts.policy) for its decision, writes its audit
events, and ends every holding of a password in a rotation through the one rotation protocol
(rotation.services.request_rotation, the same path as "Rotate now"). The dispatcher's tick
(``on_tick``, registered on rotation.hooks) expires check-outs and approvals and rotates after use.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from access import notify
from access.models import (
    PENDING_FOR,
    AccessRequest,
    AccountAccess,
    CheckOut,
    ConfigurationAccess,
    EndReason,
    Pool,
    RequestState,
)
from accounts import policy
from accounts.policy import Action
from audit import events as audit
from audit.actors import Actor
from audit.models import AuditEvent, Category, Outcome
from records.models import PamUser
from rotation import hooks, services
from rotation.models import ACTIVE_STATES, AttemptState
from rotation.reveal import reveal_password

log = logging.getLogger(__name__)

NONE_FREE = "No service accounts available for check-out."
MAX_BREAK_GLASS_MINUTES = 240
READ_EVENTS = (AuditEvent.PASSWORD_REVEALED, AuditEvent.CREDENTIAL_READ)


class Unavailable(Exception):
    """The account (or every account of a pool) cannot be handed out now; the message says why."""


class Refused(Exception):
    """A workflow step is not allowed in the request's state (not the holder, already decided, ...)."""


@dataclass(frozen=True)
class Caller:
    """Who acts: ``who`` for the policy (a request, a user or a Principal), ``actor`` for the audit log."""

    who: object
    actor: Actor
    person: object = None
    application: object = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_request(cls, request) -> Caller:
        principal = policy.actor_of(request)
        person = principal.user if principal.is_person and principal.application is None else None
        return cls(request, Actor.from_request(request), person, principal.application)

    @classmethod
    def person_acting(cls, user) -> Caller:
        """A person named on the command line (no session: the command's operator vouches)."""
        return cls(user, Actor.person(user), user, None)

    @classmethod
    def system(cls, name: str = "pamrotate") -> Caller:
        return cls(policy.SYSTEM, Actor.system(name))

    @property
    def name(self) -> str:
        return self.actor.name or "pamrotate"


SYSTEM = Caller.system()


def _event(event: str, user: PamUser, caller: Caller, message: str, outcome: str = Outcome.OK) -> None:
    audit.record_event(
        event, instance=user, actor=caller.actor, outcome=outcome, message=message, category=Category.SECURITY
    )


# -- Settings: the account's, else its pool's, else its configuration's ---------------------------


def limits(user: PamUser, pool: Pool | None = None) -> tuple[int, int]:
    """Return the (ttl, max_ttl) in seconds that apply to a check-out of this account."""
    source = pool or ConfigurationAccess.of(user.configuration_id)
    return source.checkout_ttl, source.checkout_max_ttl


def after_use_minutes(user: PamUser) -> int | None:
    """Return the rotate-after-use delay of an account (account, then pool, then configuration), or None."""
    access = AccountAccess.objects.select_related("pool").filter(user=user).first()
    for source in (access, access.pool if access else None, ConfigurationAccess.of(user.configuration_id)):
        if source is not None and source.rotate_after_use_minutes is not None:
            return source.rotate_after_use_minutes
    return None


def requires_approval(user: PamUser) -> bool:
    """Return whether the account's configuration requires approval (rules a page loaded are reused)."""
    rules = getattr(user, "_access_rules", None)
    return (rules or ConfigurationAccess.of(user.configuration_id)).require_approval


def holder_of(user: PamUser) -> CheckOut | None:
    """Return the check-out that holds an account now, or None."""
    return CheckOut.objects.held().filter(user=user).select_related("pool").first()


# -- The policy's conditions -----------------------------------------------------------------------


def approval_condition(person, target) -> str:
    """Refuse a person's reveal or check-out where approval is required and they hold no grant."""
    if not isinstance(target, PamUser) or not requires_approval(target):
        return ""
    if AccessRequest.objects.granting(person, target).exists():
        return ""
    return "This configuration requires approval: request access to this account first."


def held_condition(person, target) -> str:
    """Refuse to show a checked-out password to anyone but its holder."""
    if not isinstance(target, PamUser):
        return ""
    held = holder_of(target)
    if held is None or held.held_by_caller(person=person):
        return ""
    return f"{target} is checked out by {held.holder_name} until {held.expires_at:%Y-%m-%d %H:%M} UTC."


def register() -> None:
    """Register the policy's conditions and the dispatcher's tick (called from AccessConfig.ready)."""
    for action in (Action.REVEAL_CURRENT, Action.READ_API):
        policy.register_condition(action, held_condition)
        policy.register_condition(action, approval_condition)
    policy.register_condition(Action.CHECK_OUT, approval_condition)
    hooks.register_tick(on_tick)
    hooks.register_slot_gate(held_account_ids)


def held_account_ids(user_ids) -> set[int]:
    """Return which of these accounts are checked out now (their scheduled slots pass; check-in rotates)."""
    return set(
        AccountAccess.objects.filter(user_id__in=list(user_ids), held_by__isnull=False).values_list(
            "user_id", flat=True
        )
    )


# -- Check-out, renew, check-in --------------------------------------------------------------------


def unavailable_reason(user: PamUser) -> str:
    """Return why an account cannot be handed out now ("" when it is free but for another holder)."""
    if user.rotation_blocked_reason:
        return f"Its password could not be rotated at check-in: {user.rotation_blocked_reason}"
    if not user.has_password:
        return "No password is stored for this account."
    if user.attempts.filter(state__in=ACTIVE_STATES).exists():
        return "Its password is being rotated; try again in a moment."
    return ""


def _claim(user: PamUser, caller: Caller, pool: Pool | None, ttl: int | None) -> CheckOut | None:
    """Hold one account for the caller with a conditional UPDATE; None when someone holds it."""
    default_ttl, max_ttl = limits(user, pool)
    now = timezone.now()
    wanted = min(ttl if ttl and ttl > 0 else default_ttl, max_ttl)
    cap = now + dt.timedelta(seconds=max_ttl)
    if caller.person is not None and requires_approval(user):
        grant = AccessRequest.objects.granting(caller.person, user, now).order_by("-granted_until").first()
        cap = min(cap, grant.granted_until) if grant else now
    try:
        access = AccountAccess.of(user)
    except IntegrityError:  # two first check-outs of a new account at once
        access = AccountAccess.objects.get(user=user)
    with transaction.atomic():
        checkout = CheckOut.objects.create(
            user=user,
            pool=pool,
            person=caller.person,
            application=caller.application,
            holder_name=caller.name,
            started_at=now,
            expires_at=min(now + dt.timedelta(seconds=wanted), cap),
            max_expires_at=cap,
        )
        taken = AccountAccess.objects.filter(pk=access.pk, held_by__isnull=True).update(held_by=checkout)
        if not taken:
            transaction.set_rollback(True)
            return None
    return checkout


@sensitive_variables()
def check_out(user: PamUser, caller: Caller, *, pool: Pool | None = None, ttl: int | None = None):
    """Hand an account exclusively to the caller; return (check-out, password), or raise Unavailable.

    The password is an audited reveal (a person) or credential read (an application).
    """
    policy.require(caller.who, Action.CHECK_OUT, user)
    reason = unavailable_reason(user)
    checkout = None if reason else _claim(user, caller, pool, ttl)
    if checkout is None:
        reason = reason or "It is checked out by someone else."
        _event(AuditEvent.CHECKOUT_REFUSED, user, caller, f"Check-out refused: {reason}", Outcome.FAIL)
        raise Unavailable(reason)
    event = AuditEvent.CREDENTIAL_READ if caller.application is not None else AuditEvent.PASSWORD_REVEALED
    password = reveal_password(user, actor=caller.actor, event=event, category=Category.SECURITY)
    where = f" from pool {pool.name}" if pool else ""
    _event(
        AuditEvent.CHECKED_OUT,
        user,
        caller,
        f"Checked out{where} by {caller.name} until {checkout.expires_at:%Y-%m-%d %H:%M:%S} UTC",
    )
    return checkout, password


def pool_members(pool: Pool):
    return PamUser.objects.filter(access__pool=pool).select_related("configuration").order_by("pk")


@sensitive_variables()
def check_out_from_pool(pool: Pool, caller: Caller, *, ttl: int | None = None):
    """Hand out any free account of a pool; raise Unavailable(NONE_FREE) when none is free."""
    policy.require(caller.who, Action.CHECK_OUT, pool)
    candidates = pool_members(pool).filter(access__held_by__isnull=True)
    for user in candidates:
        if unavailable_reason(user) or not policy.can(caller.who, Action.CHECK_OUT, user):
            continue
        checkout = _claim(user, caller, pool, ttl)
        if checkout is None:
            continue  # taken by a parallel check-out since the query: try the next one
        event = AuditEvent.CREDENTIAL_READ if caller.application is not None else AuditEvent.PASSWORD_REVEALED
        password = reveal_password(user, actor=caller.actor, event=event, category=Category.SECURITY)
        _event(
            AuditEvent.CHECKED_OUT,
            user,
            caller,
            f"Checked out from pool {pool.name} by {caller.name} until {checkout.expires_at:%Y-%m-%d %H:%M:%S} UTC",
        )
        return checkout, password
    audit.record_event(
        AuditEvent.CHECKOUT_REFUSED,
        actor=caller.actor,
        outcome=Outcome.FAIL,
        message=f"Pool {pool.name}: {NONE_FREE}",
        category=Category.SECURITY,
    )
    raise Unavailable(NONE_FREE)


def renew(checkout: CheckOut, caller: Caller, seconds: int | None = None) -> CheckOut:
    """Extend a check-out by ``seconds`` (its TTL by default), never past its maximum TTL."""
    _require_holder(checkout, caller)
    ttl, max_ttl = limits(checkout.user, checkout.pool)
    now = timezone.now()
    seconds = seconds if seconds and seconds > 0 else ttl
    until = min(now + dt.timedelta(seconds=min(seconds, max_ttl)), checkout.max_expires_at)
    if not CheckOut.objects.filter(pk=checkout.pk, ended_at__isnull=True).update(expires_at=until):
        raise Refused("This check-out has ended.")
    checkout.expires_at = until
    _event(AuditEvent.CHECKOUT_RENEWED, checkout.user, caller, f"Renewed until {until:%Y-%m-%d %H:%M:%S} UTC")
    return checkout


def _require_holder(checkout: CheckOut, caller: Caller) -> None:
    if not checkout.is_held:
        raise Refused("This check-out has ended.")
    if not checkout.held_by_caller(caller.person, caller.application):
        raise Refused("Only its holder can renew or check in this account.")


def check_in(checkout: CheckOut, caller: Caller, *, reason: str = EndReason.CHECKED_IN) -> CheckOut:
    """End a check-out (by its holder, by expiry, or forced) and rotate the password; the holder's copy stops working."""
    if reason == EndReason.CHECKED_IN:
        _require_holder(checkout, caller)
    elif reason == EndReason.FORCED:
        policy.require(caller.who, Action.FORCE_CHECK_IN, checkout.user)
    now = timezone.now()
    with transaction.atomic():
        ended = CheckOut.objects.filter(pk=checkout.pk, ended_at__isnull=True).update(
            ended_at=now, end_reason=reason, ended_by_name=caller.name
        )
        if not ended:
            raise Refused("This check-out has already ended.")
        attempt = _rotate(checkout.user, caller, f"check-in ({EndReason(reason).label.lower()})")
        CheckOut.objects.filter(pk=checkout.pk).update(
            rotation_attempt_id=attempt.pk, rotation_note=attempt.error_message[:500]
        )
        _mark_used_up(checkout.user)
        AccountAccess.objects.filter(held_by=checkout).update(held_by=None)
    checkout.refresh_from_db()
    rotated = (
        "rotation queued" if attempt.state == AttemptState.QUEUED else f"not rotated: {attempt.error_message}"
    )
    _event(
        AuditEvent.CHECKED_IN,
        checkout.user,
        caller,
        f"{EndReason(reason).label} (held by {checkout.holder_name}); {rotated}"[:900],
    )
    return checkout


def _rotate(user: PamUser, caller: Caller, why: str):
    """Request a rotation through the one protocol, named for why it was asked."""
    return services.request_rotation(user, actor=caller.actor.renamed(f"{caller.name}: {why}"))


def _mark_used_up(user: PamUser) -> None:
    """Tell rotate-after-use that every read so far is covered by the rotation just requested."""
    last = (
        AuditEvent.objects.filter(record_type="pamuser", record_id=user.pk, event__in=READ_EVENTS)
        .aggregate(last=Max("id"))
        .get("last")
    )
    AccountAccess.objects.filter(user=user).update(used_event_id=last or 0)


def expire_checkouts(now: dt.datetime) -> int:
    """Check in every check-out past its time (the dispatcher's tick); return how many."""
    count = 0
    for checkout in CheckOut.objects.held().filter(expires_at__lte=now).select_related("user"):
        try:
            check_in(checkout, SYSTEM, reason=EndReason.EXPIRED)
            count += 1
        except Refused:
            pass  # checked in meanwhile by its holder or another qcluster
    return count


# -- Approval (dual control) and break-glass -------------------------------------------------------


def request_access(user: PamUser, caller: Caller, reason: str, minutes: int) -> AccessRequest:
    """Record a person's request for one account for a time, and tell every approver."""
    policy.require(caller.who, Action.REQUEST_ACCESS, user)
    if caller.person is None:
        raise Refused("Only a person can request access; applications check out directly.")
    if not requires_approval(user):
        raise Refused("This configuration does not require approval.")
    open_states = Q(state=RequestState.PENDING) | Q(
        state=RequestState.APPROVED, granted_until__gt=timezone.now()
    )
    if AccessRequest.objects.filter(open_states, user=user, requester=caller.person).exists():
        raise Refused("You already have a pending or approved request for this account.")
    request = AccessRequest(user=user, requester=caller.person, reason=reason, wanted_minutes=minutes)
    request.full_clean()
    request.save()
    _event(AuditEvent.ACCESS_REQUESTED, user, caller, f"Request #{request.pk} for {minutes} min: {reason}")
    notify.request_made(request, approvers(user, exclude=caller.person))
    return request


def approvers(user: PamUser, *, exclude=None) -> list:
    """Return the people the policy lets approve requests for this account (never ``exclude``)."""
    from django.contrib.auth import get_user_model

    people = get_user_model().objects.filter(is_active=True).exclude(pk=getattr(exclude, "pk", None))
    return [person for person in people if policy.can(person, Action.APPROVE, user)]


def decide(
    request: AccessRequest, caller: Caller, *, approve: bool, comment: str = "", minutes: int | None = None
):
    """Approve (for ``minutes``, at most what was asked) or deny a pending request; never one's own."""
    policy.require(caller.who, Action.APPROVE, request.user)
    if caller.person is None or caller.person.pk == request.requester_id:
        raise Refused("You cannot approve or deny your own request.")
    now = timezone.now()
    minutes = min(minutes or request.wanted_minutes, request.wanted_minutes)
    fields = {"decided_by": caller.person, "decided_at": now, "comment": comment[:500]}
    if approve:
        fields.update(state=RequestState.APPROVED, granted_until=now + dt.timedelta(minutes=minutes))
    else:
        fields.update(state=RequestState.DENIED)
    if not AccessRequest.objects.filter(pk=request.pk, state=RequestState.PENDING).update(**fields):
        raise Refused("This request is no longer pending.")
    request.refresh_from_db()
    event, what = (
        (AuditEvent.ACCESS_APPROVED, f"approved for {minutes} min")
        if approve
        else (AuditEvent.ACCESS_DENIED, "denied")
    )
    note = f": {comment}" if comment else ""
    _event(event, request.user, caller, f"Request #{request.pk} of {request.requester} {what}{note}")
    notify.request_decided(request)
    return request


@sensitive_variables()
def break_glass(user: PamUser, caller: Caller, justification: str, minutes: int = 60):
    """Give an Administrator the password at once; alert every approver; rotate when the window ends."""
    policy.require(caller.who, Action.BREAK_GLASS, user)
    justification = (justification or "").strip()
    if not justification:
        raise Refused("Break-glass needs a justification.")
    if caller.person is None:
        raise Refused("Only a person can break the glass.")
    if not requires_approval(user):
        raise Refused("This configuration does not require approval: reveal the password instead.")
    now = timezone.now()
    minutes = max(1, min(minutes, MAX_BREAK_GLASS_MINUTES))
    request = AccessRequest.objects.create(
        user=user,
        requester=caller.person,
        reason=justification[:500],
        wanted_minutes=minutes,
        state=RequestState.APPROVED,
        break_glass=True,
        decided_by=caller.person,
        decided_at=now,
        granted_until=now + dt.timedelta(minutes=minutes),
    )
    _event(
        AuditEvent.BREAK_GLASS, user, caller, f"BREAK-GLASS #{request.pk} for {minutes} min: {justification}"
    )
    notify.break_glass(request, approvers(user, exclude=caller.person))
    password = reveal_password(user, actor=caller.actor, category=Category.SECURITY)
    return request, password


def expire_requests(now: dt.datetime) -> int:
    """Expire pending requests nobody decided and approvals past their time; rotate where configured."""
    stale = AccessRequest.objects.filter(state=RequestState.PENDING, created_at__lte=now - PENDING_FOR)
    count = 0
    for request in stale:
        if AccessRequest.objects.filter(pk=request.pk, state=RequestState.PENDING).update(
            state=RequestState.EXPIRED, ended_at=now
        ):
            _event(
                AuditEvent.ACCESS_EXPIRED, request.user, SYSTEM, f"Request #{request.pk} expired undecided"
            )
            count += 1
    ended = AccessRequest.objects.filter(state=RequestState.APPROVED, granted_until__lte=now).select_related(
        "user"
    )
    for request in ended:
        with transaction.atomic():
            if not AccessRequest.objects.filter(pk=request.pk, state=RequestState.APPROVED).update(
                state=RequestState.EXPIRED, ended_at=now
            ):
                continue
            rotate = (
                request.break_glass
                or ConfigurationAccess.of(request.user.configuration_id).rotate_after_approval
            )
            note = "no rotation (not configured)"
            if rotate:
                attempt = _rotate(
                    request.user, SYSTEM, f"end of {'break-glass' if request.break_glass else 'approval'}"
                )
                AccessRequest.objects.filter(pk=request.pk).update(rotation_attempt_id=attempt.pk)
                _mark_used_up(request.user)
                note = (
                    "rotation queued"
                    if attempt.state == AttemptState.QUEUED
                    else f"not rotated: {attempt.error_message}"
                )
        kind = "Break-glass" if request.break_glass else "Approval"
        _event(AuditEvent.ACCESS_EXPIRED, request.user, SYSTEM, f"{kind} #{request.pk} ended; {note}"[:900])
        count += 1
    return count


# -- Rotate after use ------------------------------------------------------------------------------


def _after_use_candidates():
    """Return the accounts some rotate-after-use setting covers (account, pool or configuration)."""
    return PamUser.objects.filter(
        Q(access__rotate_after_use_minutes__isnull=False)
        | Q(access__pool__rotate_after_use_minutes__isnull=False)
        | Q(configuration__access__rotate_after_use_minutes__isnull=False)
    ).distinct()


def rotate_after_use(now: dt.datetime) -> int:
    """Rotate each account whose last reveal or read by a person is older than its delay; return how many."""
    count = 0
    for user in _after_use_candidates().select_related("configuration"):
        access = AccountAccess.of(user)
        last = (
            AuditEvent.objects.filter(
                record_type="pamuser",
                record_id=user.pk,
                event__in=READ_EVENTS,
                actor__isnull=False,
                id__gt=access.used_event_id,
            )
            .order_by("-id")
            .first()
        )
        minutes = after_use_minutes(user)
        if last is None or minutes is None or last.created_at + dt.timedelta(minutes=minutes) > now:
            continue
        if (
            access.held_by_id
            or AccessRequest.objects.filter(
                user=user, state=RequestState.APPROVED, granted_until__gt=now
            ).exists()
        ):
            continue  # the check-in or the end of the grant rotates it
        if not AccountAccess.objects.filter(pk=access.pk, used_event_id=access.used_event_id).update(
            used_event_id=last.pk
        ):
            continue  # another qcluster took it
        attempt = _rotate(user, SYSTEM, f"rotate {minutes} min after use")
        outcome = Outcome.OK if attempt.state == AttemptState.QUEUED else Outcome.FAIL
        _event(
            AuditEvent.ROTATED_AFTER_USE,
            user,
            SYSTEM,
            f"Read by {last.actor_name} at {last.created_at:%Y-%m-%d %H:%M:%S} UTC; {attempt.error_message or 'rotation queued'}"[
                :900
            ],
            outcome,
        )
        count += 1
    return count


def on_tick(now: dt.datetime) -> None:
    """Expire check-outs and approvals, rotate after use: the dispatcher's tick, every second."""
    for job in (expire_checkouts, expire_requests, rotate_after_use):
        try:
            job(now)
        except Exception as exc:  # the dispatcher must keep ticking through an outage
            log.warning("access %s: %s", job.__qualname__, type(exc).__name__)


# -- Pools -----------------------------------------------------------------------------------------


def save_pool(
    caller: Caller,
    *,
    name: str,
    configuration,
    members,
    pool: Pool | None = None,
    ttl: int | None = None,
    max_ttl: int | None = None,
    rotate_after_use_minutes: int | None = None,
) -> Pool:
    """Create or change a pool and its members (Administrators); an account belongs to at most one pool."""
    from django.core.exceptions import ValidationError

    policy.require(caller.who, Action.CONFIGURE_ROTATION, configuration)
    created = pool is None
    pool = pool or Pool(name=name)
    if pool.pk and pool.configuration_id != configuration.pk:
        policy.require(caller.who, Action.CONFIGURE_ROTATION, pool.configuration)
    pool.name, pool.configuration = name, configuration
    pool.checkout_ttl = ttl or pool.checkout_ttl
    pool.checkout_max_ttl = max_ttl or pool.checkout_max_ttl
    pool.rotate_after_use_minutes = rotate_after_use_minutes
    members = list(members)
    outside = [user for user in members if user.configuration_id != configuration.pk]
    if outside:
        raise ValidationError(f"{outside[0]} is not in the configuration {configuration}.")
    elsewhere = AccountAccess.objects.filter(user__in=members, pool__isnull=False).exclude(pool_id=pool.pk)
    taken = elsewhere.select_related("user", "pool").first()
    if taken is not None:
        raise ValidationError(f"{taken.user} already belongs to the pool {taken.pool}.")
    pool.full_clean()
    with transaction.atomic():
        pool.save()
        AccountAccess.objects.filter(pool=pool).exclude(user__in=members).update(pool=None)
        for user in members:
            AccountAccess.objects.update_or_create(user=user, defaults={"pool": pool})
    names = ", ".join(user.login for user in members) or "none"
    audit.record_event(
        AuditEvent.POOL_CHANGED,
        actor=caller.actor,
        outcome=Outcome.OK,
        category=Category.SECURITY,
        message=f"Pool {pool.name} {'created' if created else 'changed'}: members {names}; "
        f"ttl {pool.checkout_ttl}s, max {pool.checkout_max_ttl}s"[:900],
    )
    return pool


def save_configuration_access(caller: Caller, rules: ConfigurationAccess) -> ConfigurationAccess:
    """Store a configuration's access rules (Administrators), audited."""
    policy.require(caller.who, Action.CONFIGURE_ROTATION, rules.configuration)
    rules.full_clean()
    rules.save()
    audit.record_event(
        AuditEvent.RECORD_UPDATED,
        instance=rules.configuration,
        actor=caller.actor,
        outcome=Outcome.OK,
        message=(
            f"Access rules: approval {'required' if rules.require_approval else 'off'}, "
            f"ttl {rules.checkout_ttl}s, max {rules.checkout_max_ttl}s, "
            f"rotate after use {rules.rotate_after_use_minutes if rules.rotate_after_use_minutes is not None else 'off'}"
        ),
    )
    return rules
