"""Template tags that put post-rotation scripts on records' and attempts' pages (records never imports scripts)."""

from __future__ import annotations

from django import template

from accounts import policy
from records.models import RotationType
from rotation.models import AttemptState
from scripts import runner
from scripts.forms import ScriptForm
from scripts.models import PostRotationScript

register = template.Library()


def _can(context, action: str, target) -> bool:
    """Return whether the page's viewer may do an action to a record (accounts.policy)."""
    request = context.get("request")
    return bool(request) and policy.can(request, action, target)


@register.inclusion_tag("scripts/_record_panel.html", takes_context=True)
def record_scripts(context, record):
    """List a record's post-rotation scripts; Administrators attach, change and detach them."""
    field = ScriptForm.owner_field(record)
    scripts = PostRotationScript.objects.filter(**{field: record}).prefetch_related("additional_credentials")
    return {
        "record": record,
        "kind": field,
        "scripts": scripts,
        "can_configure": _can(context, policy.Action.MANAGE_SCRIPTS, record),
        "scripts_only": getattr(record, "rotation_type", "") == RotationType.SCRIPTS_ONLY,
        "csrf_token": context.get("csrf_token"),
    }


def _can_see_output(context, attempt) -> bool:
    """Output may hold what masking cannot name: show it to whom the policy lets reveal the password."""
    return _can(context, policy.Action.REVEAL_CURRENT, attempt.user)


@register.inclusion_tag("scripts/_attempt_panel.html", takes_context=True)
def attempt_scripts(context, attempt):
    """Show how an attempt's scripts ran; output to whom may reveal its password; "Run scripts again"."""
    runner.settle_stale_runs(attempt)  # a look at the page finds runs whose worker died
    attempt.refresh_from_db()
    runs = list(attempt.script_runs.all())
    scripts_only = attempt.user.rotation_type == RotationType.SCRIPTS_ONLY
    return {
        "attempt": attempt,
        "runs": runs,
        "show": bool(runs or attempt.scripts_state),
        "can_see_output": _can_see_output(context, attempt),
        "can_rerun": _can(context, policy.Action.RERUN_SCRIPTS, attempt.user)
        and not runner.refused_reason(attempt),
        "can_decide": _can(context, policy.Action.MANAGE_SCRIPTS, attempt.user)
        and scripts_only
        and attempt.state == AttemptState.UNKNOWN,
        "csrf_token": context.get("csrf_token"),
    }
