"""Template tags that put rotation's picture on records' pages (records never imports rotation)."""

from __future__ import annotations

from django import template
from django.urls import NoReverseMatch, reverse

from accounts import policy
from audit import events as audit
from audit.models import AuditEvent
from rotation import status
from rotation.models import ACTIVE_STATES, as_sentence

register = template.Library()

CHART_DAYS = 30
CHART_HEIGHT = 160
CHART_TOP = 12
BAR_WIDTH = 16
BAR_STEP = 20
CHART_LEFT = 34
PROBLEMS_SHOWN = 10


def _can(context, perm: str) -> bool:
    request = context.get("request")
    return bool(request and policy.can_permission(request, perm))


@register.inclusion_tag("rotation/_chart.html", takes_context=True)
def rotation_chart(context, days: int = CHART_DAYS):
    """Draw rotations per day, successes and failures stacked, as an inline SVG."""
    if not _can(context, "rotation.view_rotationattempt"):
        return {"show": False}
    chart = status.rotations_per_day(days)
    peak = max((day.ok + day.failed for day in chart), default=0) or 1
    baseline = CHART_TOP + CHART_HEIGHT
    bars = []
    for index, day in enumerate(chart):
        ok_height = round(day.ok / peak * CHART_HEIGHT, 1)
        failed_height = round(day.failed / peak * CHART_HEIGHT, 1)
        x = CHART_LEFT + index * BAR_STEP
        bars.append(
            {
                "day": day,
                "x": x,
                "label_x": x + BAR_WIDTH / 2,
                # Every seventh day, counted back from today so that today is labelled.
                "label": day.day.strftime("%d %b") if (len(chart) - 1 - index) % 7 == 0 else "",
                "ok_y": round(baseline - ok_height, 1),
                "ok_height": ok_height,
                "failed_y": round(baseline - ok_height - failed_height, 1),
                "failed_height": failed_height,
            }
        )
    return {
        "show": True,
        "bars": bars,
        "days": days,
        "peak": peak,
        "width": CHART_LEFT + days * BAR_STEP + 16,  # room for the last date label
        "height": baseline + 22,
        "top": CHART_TOP,
        "baseline": baseline,
        "bar_width": BAR_WIDTH,
        "plot_height": CHART_HEIGHT,
        "axis_right": CHART_LEFT + days * BAR_STEP,
        "label_y": baseline + 16,
        "totals": {"ok": sum(day.ok for day in chart), "failed": sum(day.failed for day in chart)},
    }


@register.inclusion_tag("rotation/_problems.html", takes_context=True)
def rotation_problems(context):
    """List failed and overdue accounts with links, and let an operator rotate them again."""
    if not _can(context, "records.view_pamuser"):
        return {"show": False}
    failed = list(
        policy.scope(context["request"], status.failed_users()).only(
            "id", "title", "login", "rotation_error", "rotation_status"
        )[: PROBLEMS_SHOWN + 1]
    )
    overdue = list(
        policy.scope(context["request"], status.overdue_users())
        .select_related("configuration")
        .only("id", "title", "login", "next_rotation_at", "queued_since", "configuration__gateway")[
            : PROBLEMS_SHOWN + 1
        ]
    )
    stalls, scheduler = status.stalled_gateways(), status.health()["scheduler"]
    for pam_user in overdue:
        pam_user.due = status.due_at(pam_user)
        pam_user.stall = status.overdue_reason(pam_user, stalls=stalls, scheduler=scheduler)
    retries = status.pending_retries([pam_user.pk for pam_user in failed])
    for pam_user in failed:
        retry = retries.get(pam_user.pk)
        pam_user.retrying = status.retry_note(retry) if retry is not None else None
    account_problems = list(
        policy.scope(context["request"], status.account_problem_users()).only(
            "id", "title", "login", "account_state", "account_state_detail"
        )[: PROBLEMS_SHOWN + 1]
    )
    return {
        "show": True,
        "stalled": [stall for stall in stalls.values() if stall.accounts],
        "account_problems": account_problems[:PROBLEMS_SHOWN],
        "more_account_problems": len(account_problems) > PROBLEMS_SHOWN,
        "failed": failed[:PROBLEMS_SHOWN],
        "more_failed": len(failed) > PROBLEMS_SHOWN,
        "overdue": overdue[:PROBLEMS_SHOWN],
        "more_overdue": len(overdue) > PROBLEMS_SHOWN,
        "can_rotate": _can(context, "records.rotate_credentials"),
        "csrf_token": context.get("csrf_token"),
    }


@register.simple_tag(takes_context=True)
def dashboard_counts(context) -> dict:
    """Return the dashboard's record and problem counts (rotation/status.py), within the viewer's scope."""
    request = context.get("request")
    return status.counts(policy.configurations_for(request) if request is not None else set())


@register.inclusion_tag("rotation/_heartbeat_warning.html")
def heartbeat_warning():
    """Warn when a gateway takes no task, or no worker or scheduler was seen in the last two minutes."""
    state = status.health()
    worker_missing = not state["worker"] and not state["stalled"]  # a stalled gateway says more
    return {
        "stalled": [stall.message for stall in status.stalled_gateways().values()],
        "missing": ["rotation worker"] * worker_missing + ["scheduler"] * (not state["scheduler"]),
        "minutes": int(status.HEARTBEAT_STALE_AFTER.total_seconds() // 60),
    }


@register.simple_tag
def retry_status(attempt):
    """Return how an attempt's retry stands (rotation/status.py ``retry_note``), or None."""
    return status.retry_note(attempt) if attempt is not None else None


@register.inclusion_tag("rotation/_waiting.html")
def waiting_warning(attempt):
    """Say, on the page of a queued attempt, that its gateway takes no task (rotation/status.py); kept current by waiting.js."""
    if attempt is None or attempt.state != "queued":
        return {"show": False}
    return {"show": True, "attempt": attempt, "problem": status.waiting_problem(attempt)}


@register.simple_tag
def active_attempt(pam_user):
    """Return the account's queued or running attempt, or None."""
    return pam_user.attempts.filter(state__in=ACTIVE_STATES).order_by("id").first()


@register.inclusion_tag("rotation/_history_link.html", takes_context=True)
def user_history_link(context, pam_user):
    """Link to an account's full rotation history (and its audit events)."""
    return {
        "pam_user": pam_user,
        "show": _can(context, "rotation.view_rotationattempt"),
        "audit": _can(context, "audit.view_auditevent"),
    }


@register.inclusion_tag("rotation/_version_reveal.html", takes_context=True)
def version_reveal_button(context, version, pam_user=None):
    """A Reveal button for an earlier password, for Administrators only."""
    request, owner = context.get("request"), pam_user if pam_user is not None else version.user
    show = bool(request and policy.can(request, policy.Action.REVEAL_PREVIOUS, owner))
    return {
        "show": show,
        "version": version,
        "user_id": pam_user.pk if pam_user is not None else version.user_id,
        "csrf_token": context.get("csrf_token"),
    }


@register.filter
def audit_record_url(event) -> str:
    """Return the page of the record an audit event is about, or an empty string."""
    name = audit.RECORD_URLS.get(event.record_type)
    if not name or event.record_id is None or event.event == AuditEvent.RECORD_DELETED:
        return ""
    try:
        return reverse(name, args=[event.record_id])
    except NoReverseMatch:
        return ""


@register.filter
def outcome_class(outcome: str) -> str:
    """Return the badge colour of an outcome."""
    return {"ok": "text-bg-success", "fail": "text-bg-danger"}.get(outcome, "text-bg-secondary")


# One colour per state, for attempts (AttemptState) and accounts (RotationStatus) alike.
STATE_BADGES = {
    "succeeded": "text-bg-success",
    "reconciled": "text-bg-success",
    "failed": "text-bg-danger",
    "refused": "text-bg-danger",
    "unknown": "text-bg-warning",
    "running": "text-bg-primary",
    "queued": "text-bg-info",
    "never": "text-bg-secondary",
}


@register.filter
def attempt_class(state: str) -> str:
    """Return the badge colour of an attempt state or an account's rotation status."""
    return STATE_BADGES.get(state, "text-bg-secondary")


@register.filter
def sentence(text: str) -> str:
    """Show a stored message as a sentence (rotation.models.as_sentence)."""
    return as_sentence(text or "")
