"""Directory sign-in (django-auth-ldap): its settings, read from the environment when settings load.

Every connection is encrypted and verified: an ``ldaps://`` URL, or ``ldap://`` with StartTLS, the
certificate checked against ``PAMROTATE_LDAP_CA_FILE`` (or the system's CAs). Plain LDAP is refused
when the settings load. Group DNs map to the three roles (and superuser); the mapping is applied at
every directory sign-in, so leaving a group takes the role away at the next sign-in. A local account
(break-glass) never signs in through the directory, even if the directory has the same name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from django.core.exceptions import ImproperlyConfigured

GROUP_TYPES = ("active_directory", "nested_active_directory", "group_of_names", "nested_group_of_names")
# Role (group name, as in accounts/roles.py) -> the variable naming its directory group DN.
# pamrotate/settings.py imports this module before any app loads: it imports no app and no model.
ROLE_VARIABLES = {
    "Viewers": "PAMROTATE_LDAP_VIEWERS_GROUP",
    "Operators": "PAMROTATE_LDAP_OPERATORS_GROUP",
    "Administrators": "PAMROTATE_LDAP_ADMINISTRATORS_GROUP",
}


def _group_type(name: str):
    from django_auth_ldap import config

    classes = {
        "active_directory": config.ActiveDirectoryGroupType,
        "nested_active_directory": config.NestedActiveDirectoryGroupType,
        "group_of_names": config.GroupOfNamesType,
        "nested_group_of_names": config.NestedGroupOfNamesType,
    }
    if name not in classes:
        raise ImproperlyConfigured(
            f"PAMROTATE_LDAP_GROUP_TYPE must be one of {', '.join(GROUP_TYPES)}, not {name!r}"
        )
    return classes[name]()


def settings_from_environment(environ: Mapping[str, str], secret: Callable[[str], str]) -> dict:
    """Return the AUTH_LDAP_* settings and the role mapping; empty when PAMROTATE_LDAP_URL is unset."""
    url = environ.get("PAMROTATE_LDAP_URL", "").strip()
    if not url:
        return {"DIRECTORY_SIGNIN": False, "DIRECTORY_ROLE_GROUPS": {}, "DIRECTORY_SUPERUSER_GROUP": ""}
    import ldap
    from django_auth_ldap.config import LDAPGroupQuery, LDAPSearch

    start_tls = environ.get("PAMROTATE_LDAP_START_TLS", "").strip().lower() in ("1", "true", "yes", "on")
    check_url(url, start_tls)
    options = {
        ldap.OPT_REFERRALS: 0,
        ldap.OPT_NETWORK_TIMEOUT: int(environ.get("PAMROTATE_LDAP_CONNECT_TIMEOUT") or 5),
        ldap.OPT_TIMEOUT: int(environ.get("PAMROTATE_LDAP_OPERATION_TIMEOUT") or 15),
        ldap.OPT_X_TLS_REQUIRE_CERT: ldap.OPT_X_TLS_DEMAND,
        ldap.OPT_X_TLS_PROTOCOL_MIN: ldap.OPT_X_TLS_PROTOCOL_TLS1_2,
    }
    if environ.get("PAMROTATE_LDAP_CA_FILE"):
        options[ldap.OPT_X_TLS_CACERTFILE] = environ["PAMROTATE_LDAP_CA_FILE"]
    options[ldap.OPT_X_TLS_NEWCTX] = 0  # must come last: it builds the TLS context from the options above
    values = {
        "DIRECTORY_SIGNIN": True,
        "AUTH_LDAP_SERVER_URI": url,
        "AUTH_LDAP_START_TLS": start_tls,
        "AUTH_LDAP_CONNECTION_OPTIONS": options,
        "AUTH_LDAP_BIND_DN": environ.get("PAMROTATE_LDAP_BIND_DN", ""),
        "AUTH_LDAP_BIND_PASSWORD": secret("PAMROTATE_LDAP_BIND_PASSWORD"),
        "AUTH_LDAP_USER_ATTR_MAP": {"first_name": "givenName", "last_name": "sn", "email": "mail"},
        "AUTH_LDAP_ALWAYS_UPDATE_USER": True,
        "AUTH_LDAP_CACHE_TIMEOUT": 0,  # group membership is read afresh at every sign-in
    }
    template = environ.get("PAMROTATE_LDAP_USER_DN_TEMPLATE", "")
    search_base = environ.get("PAMROTATE_LDAP_USER_SEARCH_BASE", "")
    if template:
        values["AUTH_LDAP_USER_DN_TEMPLATE"] = template
        values["AUTH_LDAP_BIND_AS_AUTHENTICATING_USER"] = True
    elif search_base:
        user_filter = environ.get("PAMROTATE_LDAP_USER_FILTER", "(uid=%(user)s)")
        values["AUTH_LDAP_USER_SEARCH"] = LDAPSearch(search_base, ldap.SCOPE_SUBTREE, user_filter)
    else:
        raise ImproperlyConfigured(
            "PAMROTATE_LDAP_URL needs PAMROTATE_LDAP_USER_SEARCH_BASE (search, with a bind account) "
            "or PAMROTATE_LDAP_USER_DN_TEMPLATE (direct bind)"
        )
    group_base = environ.get("PAMROTATE_LDAP_GROUP_SEARCH_BASE", "") or search_base
    group_type = environ.get("PAMROTATE_LDAP_GROUP_TYPE", "group_of_names")
    group_class = "group" if "active_directory" in group_type else "groupOfNames"
    values["AUTH_LDAP_GROUP_TYPE"] = _group_type(group_type)
    if group_base:
        values["AUTH_LDAP_GROUP_SEARCH"] = LDAPSearch(
            group_base, ldap.SCOPE_SUBTREE, f"(objectClass={group_class})"
        )
    role_groups = {
        role: environ[name].strip() for role, name in ROLE_VARIABLES.items() if environ.get(name, "").strip()
    }
    superuser = environ.get("PAMROTATE_LDAP_SUPERUSER_GROUP", "").strip()
    values["DIRECTORY_ROLE_GROUPS"] = role_groups
    values["DIRECTORY_SUPERUSER_GROUP"] = superuser
    if superuser:
        values["AUTH_LDAP_USER_FLAGS_BY_GROUP"] = {"is_superuser": superuser, "is_staff": superuser}
    mapped = [*role_groups.values(), *([superuser] if superuser else [])]
    if mapped and (role_groups or superuser) and not _off(environ.get("PAMROTATE_LDAP_REQUIRE_GROUP", "")):
        query = LDAPGroupQuery(mapped[0])
        for dn in mapped[1:]:
            query |= LDAPGroupQuery(dn)
        values["AUTH_LDAP_REQUIRE_GROUP"] = query
    return values


def _off(value: str) -> bool:
    return value.strip().lower() in ("0", "false", "no", "off")


def check_url(url: str, start_tls: bool) -> None:
    """Refuse a directory URL that would sign in over an unencrypted connection."""
    for one in url.split():
        scheme = one.split("://", 1)[0].lower()
        if scheme == "ldaps":
            continue
        if scheme == "ldap" and start_tls:
            continue
        if scheme == "ldap":
            raise ImproperlyConfigured(
                f"PAMROTATE_LDAP_URL {one!r} is plain LDAP: use ldaps:// or set PAMROTATE_LDAP_START_TLS=1"
            )
        raise ImproperlyConfigured(f"PAMROTATE_LDAP_URL {one!r} must start with ldaps:// or ldap://")
