"""The access panel on an account's page (records never imports access)."""

from __future__ import annotations

from django import template

from access import services
from access.models import AccessRequest, AccountAccess, ConfigurationAccess, RequestState
from accounts import policy
from accounts.policy import Action

register = template.Library()


@register.inclusion_tag("access/_panel.html", takes_context=True)
def access_panel(context, pam_user):
    """Show who holds the account and for how long, and the buttons the policy allows."""
    request = context["request"]
    rules = ConfigurationAccess.of(pam_user.configuration_id)
    held = services.holder_of(pam_user)
    access = AccountAccess.objects.select_related("pool").filter(user=pam_user).first()
    person = request.user
    mine = held is not None and held.held_by_caller(person=person)
    grant = AccessRequest.objects.granting(person, pam_user).order_by("-granted_until").first()
    pending = AccessRequest.objects.filter(
        requester=person, user=pam_user, state=RequestState.PENDING
    ).first()
    return {
        "pam_user": pam_user,
        "rules": rules,
        "held": held,
        "mine": mine,
        "pool": access.pool if access else None,
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
