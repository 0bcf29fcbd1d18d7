"""Template filters for the sign-in pages and the navigation bar."""

from __future__ import annotations

from django import template

from accounts import roles

register = template.Library()


@register.filter
def manages_people(user) -> bool:
    """Return whether the user may open the people page."""
    return roles.is_administrator(user)
