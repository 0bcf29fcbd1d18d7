"""Discovery reads: the accounts a filter finds under a base, page by page, with the administrative credential."""

from __future__ import annotations

import ldap3
from ldap3.core import exceptions as ldap_errors
from ldap3.utils.conv import escape_filter_chars

from rotation.ldap.connection import _Attempt, _naming_contexts, _run
from rotation.ldap.state import _AD_ATTRIBUTES, _AD_COMPUTED, _OPENLDAP_ATTRIBUTES, DirectoryAccount, _account
from rotation.ldap_errors import ADMIN, DirectoryError, DirectorySpec

AD_DISCOVERY_FILTER = "(&(objectCategory=person)(objectClass=user))"
OPENLDAP_DISCOVERY_FILTER = "(|(objectClass=inetOrgPerson)(objectClass=posixAccount))"
# Active Directory's MaxPageSize: it never returns more entries per page than this.
PAGE_SIZE = 1000
_PAGED_RESULTS = "1.2.840.113556.1.4.319"


def discovery_filter(spec: DirectorySpec, configured: str = "") -> str:
    """Return the filter that finds a directory's accounts: AD's fixed one, or OpenLDAP's configured or default one."""
    if spec.is_ad:
        return AD_DISCOVERY_FILTER
    return configured.strip() or OPENLDAP_DISCOVERY_FILTER


def search_accounts(
    spec: DirectorySpec,
    admin_user: str,
    admin_password: str,
    base: str = "",
    search_filter: str = "",
    *,
    page_size: int = PAGE_SIZE,
) -> list[DirectoryAccount]:
    """Return every account under ``base`` (blank: the naming context) that the filter matches, page by page."""
    search_filter = search_filter or discovery_filter(spec)

    def action(attempt: _Attempt) -> list[DirectoryAccount]:
        conn = attempt.bind(admin_user, admin_password, who=ADMIN, reuse=True)
        root = base or _naming_contexts(attempt, conn)[0]
        entries = _paged_search(attempt, conn, root, search_filter, page_size)
        return [_account(spec, entry) for entry in entries]

    return _run(_Attempt(spec, (admin_password,)), action)


def find_accounts(
    spec: DirectorySpec,
    admin_user: str,
    admin_password: str,
    login: str,
    base: str = "",
    search_filter: str = "",
) -> list[DirectoryAccount]:
    """Return the accounts whose login (sAMAccountName or userPrincipalName on AD, uid on OpenLDAP) is ``login``."""
    value = escape_filter_chars(login.strip())
    if spec.is_ad:
        sam = escape_filter_chars(login.strip().rsplit("\\", 1)[-1])  # DOMAIN\user names the same account
        by_login = f"(|(sAMAccountName={sam})(userPrincipalName={value}))"
    else:
        by_login = f"(uid={value})"
    combined = f"(&{discovery_filter(spec, search_filter)}{by_login})"
    return search_accounts(spec, admin_user, admin_password, base, combined, page_size=10)


def _paged_search(
    attempt: _Attempt, conn: ldap3.Connection, base: str, search_filter: str, page_size: int
) -> list[dict]:
    """Search a subtree with the simple paged results control (RFC 2696) and return every entry."""
    attributes = [*_AD_ATTRIBUTES, _AD_COMPUTED] if attempt.spec.is_ad else list(_OPENLDAP_ATTRIBUTES)
    entries: list[dict] = []
    cookie = None
    while True:
        try:
            conn.search(
                base,
                search_filter,
                search_scope=ldap3.SUBTREE,
                attributes=attributes,
                paged_size=page_size,
                paged_cookie=cookie,
            )
        except ldap_errors.LDAPInvalidFilterError:
            attempt.fail(
                DirectoryError.CONFIGURATION,
                f"the discovery filter is not a valid LDAP filter: write it like {OPENLDAP_DISCOVERY_FILTER}",
            )
        code = conn.result.get("result")
        if code == 32:
            attempt.fail(
                DirectoryError.CONFIGURATION,
                f"the search base {base!r} was not found on the directory: check the directory's user match",
                code,
            )
        if code != 0:
            attempt.fail_result(conn.result, ADMIN)
        entries.extend(entry for entry in conn.response or () if entry.get("type") == "searchResEntry")
        control = (conn.result.get("controls") or {}).get(_PAGED_RESULTS) or {}
        cookie = (control.get("value") or {}).get("cookie")
        if not cookie:
            return entries
