"""Every named route of the site, for the tests that walk them all (bad input, accessibility)."""

from __future__ import annotations

from django.urls import URLResolver, get_resolver


def named_routes(patterns=None, namespace="", params=()) -> list[tuple[str, tuple[str, ...], str]]:
    """Return (namespaced name, path parameter names, the route's own text) of every named URL pattern."""
    found = []
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        names = (*params, *entry.pattern.regex.groupindex)
        if isinstance(entry, URLResolver):
            inner = f"{namespace}:{entry.namespace}" if namespace and entry.namespace else entry.namespace
            found += named_routes(entry.url_patterns, inner or namespace, names)
        elif entry.name:
            found.append(
                (f"{namespace}:{entry.name}" if namespace else entry.name, names, str(entry.pattern))
            )
    return sorted(set(found))
