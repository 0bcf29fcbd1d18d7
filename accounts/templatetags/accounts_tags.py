"""Template filters for the sign-in pages and the navigation bar."""

from __future__ import annotations

from django import template

from accounts import policy

register = template.Library()


@register.filter
def manages_people(request) -> bool:
    """Return whether the request's actor may open the people page."""
    return policy.can(request, policy.Action.MANAGE_PEOPLE)


@register.simple_tag(takes_context=True)
def can(context, action: str, target=None) -> bool:
    """Return whether the page's actor may do the action to the target (accounts.policy): {% can "edit" record as x %}."""
    request = context.get("request")
    return request is not None and policy.can(request, action, target)


@register.filter(name="may")
def may(request, action: str) -> bool:
    """Return whether the request's actor may do an action somewhere: {% if request|may:"import" %}."""
    return request is not None and policy.can(request, action)
