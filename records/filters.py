"""The record lists' search and filters, read from a query string: one set for the pages and the API.

A value that does not parse is ignored (never an error), so any query string lists something.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from records.models import (
    AccountState,
    DirectoryType,
    PamConfiguration,
    PamDirectory,
    PamUser,
    RotationStatus,
)

ROTATION_CHOICES = [("on", "on"), ("off", "off")]


def int_param(query, name: str) -> int | None:
    """Return a query parameter as a positive integer, or None when it is missing or not one."""
    value = query.get(name, "")
    return int(value) if value.isascii() and value.isdigit() and len(value) < 19 else None


def search_param(query, name: str = "q") -> str:
    """Return the search text without NUL characters (PostgreSQL refuses them)."""
    return query.get(name, "").replace("\x00", "").strip()[:200]


def choice_param(query, name: str, choices) -> str:
    """Return a query parameter when it is one of the choices, else an empty string."""
    value = query.get(name, "")
    return value if value in dict(choices) else ""


def filter_configurations(query, queryset: QuerySet) -> tuple[QuerySet, dict]:
    """Apply the configuration list's search (title, network ID, application folder)."""
    selected = {"q": search_param(query)}
    if q := selected["q"]:
        queryset = queryset.filter(
            Q(title__icontains=q) | Q(network_id__icontains=q) | Q(application_folder__icontains=q)
        )
    return queryset, selected


def filter_directories(query, queryset: QuerySet) -> tuple[QuerySet, dict]:
    """Apply the directory list's search (title, hostname, domain), configuration and type."""
    selected = {
        "q": search_param(query),
        "configuration": int_param(query, "configuration"),
        "type": choice_param(query, "type", DirectoryType.choices),
    }
    if q := selected["q"]:
        queryset = queryset.filter(
            Q(title__icontains=q) | Q(hostname__icontains=q) | Q(domain_name__icontains=q)
        )
    if selected["configuration"] is not None:
        queryset = queryset.filter(configuration_id=selected["configuration"])
    if selected["type"]:
        queryset = queryset.filter(directory_type=selected["type"])
    return queryset, selected


def filter_users(query, queryset: QuerySet) -> tuple[QuerySet, dict]:
    """Apply the user list's search and filters; unknown values are ignored."""
    selected = {
        "q": search_param(query),
        "configuration": int_param(query, "configuration"),
        "directory": int_param(query, "directory"),
        "type": choice_param(query, "type", DirectoryType.choices),
        "status": choice_param(query, "status", RotationStatus.choices),
        "account_state": choice_param(query, "account_state", AccountState.choices),
        "rotation": choice_param(query, "rotation", ROTATION_CHOICES),
        "overdue": query.get("overdue") == "1",
    }
    if q := selected["q"]:
        queryset = queryset.filter(
            Q(title__icontains=q) | Q(login__icontains=q) | Q(distinguished_name__icontains=q)
        )
    if selected["configuration"] is not None:
        queryset = queryset.filter(configuration_id=selected["configuration"])
    if selected["directory"] is not None:
        queryset = queryset.filter(resource_id=selected["directory"])
    if selected["type"]:
        queryset = queryset.filter(resource__directory_type=selected["type"])
    if selected["status"]:
        queryset = queryset.filter(rotation_status=selected["status"])
    if selected["account_state"]:
        queryset = queryset.filter(account_state=selected["account_state"])
    if selected["rotation"] == "on":
        queryset = queryset.rotatable()
    elif selected["rotation"] == "off":
        queryset = queryset.exclude(pk__in=PamUser.objects.rotatable().values("pk"))
    if selected["overdue"]:
        queryset = queryset.overdue()
    return queryset, selected


def configurations_and_directories() -> tuple[list, list]:
    """Return (id, title) pairs for the filter menus."""
    return (
        list(PamConfiguration.objects.order_by("title").values_list("id", "title")),
        list(PamDirectory.objects.order_by("title").values_list("id", "title")),
    )


# -- What an id covers, for the audit log's configuration and directory filters ------------------


def configuration_scope(pk: int) -> dict:
    """Return the records a configuration covers: itself, its directories and its users."""
    return {
        "pamconfiguration": [pk],
        "pamdirectory": PamDirectory.objects.filter(configuration_id=pk).values("pk"),
        "pamuser": PamUser.objects.filter(configuration_id=pk).values("pk"),
    }


def directory_scope(pk: int) -> dict:
    """Return the records a directory covers: itself and the users it rotates."""
    return {"pamdirectory": [pk], "pamuser": PamUser.objects.filter(resource_id=pk).values("pk")}
