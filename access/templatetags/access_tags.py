"""The access panel on an account's page (records never imports access)."""

from __future__ import annotations

from django import template
from django.db.models import Q
from django.utils import timezone

from access.models import AccessRequest, ConfigurationAccess, RequestState
from accounts import policy
from accounts.policy import Action
from records.models import PamUser

register = template.Library()


@register.inclusion_tag("access/_panel.html", takes_context=True)
def access_panel(context, pam_user):
    """Show who holds the account and for how long, and the buttons the policy allows (one query, two with approval)."""
    request = context["request"]
    loaded = PamUser.objects.select_related("access__pool", "access__held_by", "configuration__access").get(
        pk=pam_user.pk
    )
    access = getattr(loaded, "access", None)
    rules = getattr(loaded.configuration, "access", None) or ConfigurationAccess(
        configuration_id=pam_user.configuration_id
    )
    pam_user._access_rules = rules  # the policy's approval condition reads the rules loaded here
    held = access.held_by if access is not None else None
    person = request.user
    grant = pending = None
    if rules.require_approval:
        now = timezone.now()
        open_requests = AccessRequest.objects.filter(
            Q(state=RequestState.PENDING) | Q(state=RequestState.APPROVED, granted_until__gt=now),
            requester=person,
            user=pam_user,
        ).order_by("-granted_until")
        for found in open_requests:
            if found.state == RequestState.APPROVED and grant is None:
                grant = found
            elif found.state == RequestState.PENDING:
                pending = found
    return {
        "pam_user": pam_user,
        "rules": rules,
        "held": held,
        "mine": held is not None and held.held_by_caller(person=person),
        "pool": access.pool if access is not None else None,
        "grant": grant,
        "pending": pending,
        "may_check_out": policy.can(request, Action.CHECK_OUT, pam_user),
        "may_force": policy.can(request, Action.FORCE_CHECK_IN, pam_user),
        "may_request": rules.require_approval
        and not grant
        and not pending
        and policy.can(request, Action.REQUEST_ACCESS, pam_user),
        "may_break_glass": rules.require_approval
        and not grant
        and policy.can(request, Action.BREAK_GLASS, pam_user),
        "may_configure": policy.can(request, Action.CONFIGURE_ROTATION, pam_user),
        "csrf_token": context.get("csrf_token"),
    }
