"""Know the directory: list its accounts, adopt them as PAM Users, and find a login's DN.

Everything here reads with the directory's administrative credential (rotation/ldap/); nothing
binds as a discovered account. Adoption goes through ``records.changes.save_record`` like every
other record change, so each adopted account is scheduled and audited as a record creation.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.views.decorators.debug import sensitive_variables

from audit import events
from audit.actors import SYSTEM_ACTOR, Actor
from audit.models import AuditEvent, Category, Outcome
from records import schedules
from records.changes import save_record
from records.models import SCHEDULE_FIELDS, PamDirectory, PamUser
from rotation import ldap
from rotation.directories import admin_bind_name, directory_spec


@dataclass(frozen=True)
class DiscoveredAccount:
    """A directory account and the PAM User that already manages it, if any."""

    account: ldap.DirectoryAccount
    pam_user_id: int | None = None
    pam_user_title: str = ""

    @property
    def adopted(self) -> bool:
        return self.pam_user_id is not None

    @property
    def key(self) -> str:
        return canonical_dn(self.account.dn)

    @property
    def readable_dn(self) -> str:
        """Return the DN for people to read: hex escapes (``\\2C``, UTF-8 ``\\C3\\A9``) as characters."""
        return readable_dn(self.account.dn)


_HEX_ESCAPES = re.compile(r"(?:\\[0-9A-Fa-f]{2})+")


def readable_dn(dn: str) -> str:
    """Return a DN with hex escapes undone, special characters kept escaped as ``\\,`` (RFC 4514)."""

    def decode(match: re.Match) -> str:
        try:
            text = bytes.fromhex(match.group().replace("\\", "")).decode()
        except UnicodeDecodeError:
            return match.group()
        return "".join("\\" + char if char in ',+"\\<>;' else char for char in text)

    return _HEX_ESCAPES.sub(decode, dn)


def canonical_dn(dn: str) -> str:
    """Return a DN in one form for comparison: attribute types and values case-folded, escapes undone, RDN values sorted.

    ``CN=Smith\\, John,OU=x`` and ``cn=smith\\2C john, ou=X`` give the same text. Not for sending to a server.
    """
    rdns: list[str] = []
    avas: list[str] = []
    name: list[str] = []
    value = bytearray()
    in_value = False
    text = dn.strip()
    i = 0
    while i < len(text):
        char = text[i]
        if not in_value:
            if char == "=":
                in_value = True
            elif char in ",+;":
                return text.casefold()  # not a DN we can read: compare it as it is
            else:
                name.append(char)
            i += 1
            continue
        if char == "\\" and i + 1 < len(text):
            pair = text[i + 1 : i + 3]
            if len(pair) == 2 and all(c in string.hexdigits for c in pair):
                value.append(int(pair, 16))
                i += 3
            else:
                value += text[i + 1].encode()
                i += 2
            continue
        if char in ",+;":
            avas.append(_ava(name, value))
            name, value, in_value = [], bytearray(), False
            if char != "+":
                rdns.append("+".join(sorted(avas)))
                avas = []
            i += 1
            continue
        value += char.encode()
        i += 1
    if in_value:
        avas.append(_ava(name, value))
    if avas:
        rdns.append("+".join(sorted(avas)))
    return ",".join(rdns)


def _ava(name: list[str], value: bytearray) -> str:
    decoded = value.decode("utf-8", "replace").strip()
    # Separators are escaped again so that a value holding one cannot look like two RDNs.
    for char in "\\,+=;":
        decoded = decoded.replace(char, "\\" + char)
    return f"{''.join(name).strip().casefold()}={decoded.casefold()}"


def managed_dns(directory: PamDirectory) -> dict[str, tuple[int, str]]:
    """Return the PAM Users that manage accounts of this directory, by canonical DN.

    Users of the directory's configuration count when this directory rotates them or when no
    directory does (its administrative credential, typically).
    """
    users = PamUser.objects.filter(configuration_id=directory.configuration_id).exclude(distinguished_name="")
    users = users.filter(resource__isnull=True) | users.filter(resource=directory)
    return {
        canonical_dn(dn): (pk, title)
        for pk, title, dn in users.values_list("pk", "title", "distinguished_name")
    }


@sensitive_variables()
def search(directory: PamDirectory) -> list[ldap.DirectoryAccount]:
    """Return every account the directory's search base and filter find (raises DirectoryError)."""
    admin_name, admin_password = admin_bind_name(directory)
    spec = directory_spec(directory)
    return ldap.search_accounts(
        spec,
        admin_name,
        admin_password,
        directory.user_match,
        ldap.discovery_filter(spec, directory.discovery_filter),
    )


def discover(directory: PamDirectory, *, actor: Actor = SYSTEM_ACTOR) -> list[DiscoveredAccount]:
    """Search the directory and mark each account with the PAM User that manages it; record who asked."""
    try:
        accounts = search(directory)
    except ldap.DirectoryError as exc:
        _audit_run(directory, Outcome.FAIL, str(exc), actor)
        raise
    managed = managed_dns(directory)
    found = []
    for account in sorted(accounts, key=lambda a: (a.login.casefold(), a.dn.casefold())):
        pk, title = managed.get(canonical_dn(account.dn), (None, ""))
        found.append(DiscoveredAccount(account, pk, title))
    adopted = sum(1 for item in found if item.adopted)
    _audit_run(directory, Outcome.OK, f"{len(found)} accounts found, {adopted} already managed", actor)
    return found


def _audit_run(directory: PamDirectory, outcome: str, message: str, actor: Actor) -> None:
    events.record_event(
        AuditEvent.DIRECTORY_DISCOVERED,
        instance=directory,
        actor=actor,
        outcome=outcome,
        message=f"Discovery: {message}",
        category=Category.DIRECTORY,
    )


@dataclass
class Adoption:
    """What an adoption did: the PAM Users it created and the DNs it left alone (already managed or not found)."""

    created: list[PamUser]
    already_managed: list[str]
    not_found: list[str]


def adopt(
    directory: PamDirectory,
    dns: list[str] | None,
    *,
    template: PamUser | None = None,
    actor: Actor = SYSTEM_ACTOR,
) -> Adoption:
    """Create PAM Users for the directory's accounts named by ``dns`` (None: every unmanaged one), all or nothing.

    Each gets the directory's configuration, rotation on, no stored password (the first rotation's
    administrative reset needs none) and the schedule and complexity of ``template`` (default: the
    configuration's). Accounts already managed are skipped, so adopting twice creates nothing twice.
    """
    found = {item.key: item for item in discover(directory, actor=actor)}
    if dns is None:
        wanted = {key: item.account.dn for key, item in found.items()}
    else:
        wanted = {canonical_dn(dn): dn for dn in reversed(dns)}  # the first spelling of each DN wins
    result = Adoption([], [], [])
    taken = set(PamUser.objects.values_list("title", flat=True))
    with transaction.atomic():
        for key, dn in wanted.items():
            item = found.get(key)
            if item is None:
                result.not_found.append(dn)
                continue
            if item.adopted:
                result.already_managed.append(item.account.dn)
                continue
            user = _new_user(directory, item.account, template, taken)
            user.full_clean()
            save_record(
                user,
                created=True,
                actor=actor,
                changed=[
                    "title",
                    "login",
                    "distinguished_name",
                    "resource",
                    "rotation_enabled",
                    "schedule_type",
                ],
            )
            result.created.append(user)
    return result


ADOPTED_SCHEDULE_FIELDS = (*SCHEDULE_FIELDS, "password_complexity")


def _new_user(
    directory: PamDirectory, account: ldap.DirectoryAccount, template: PamUser | None, taken: set[str]
) -> PamUser:
    login = account.login or account.principal_name or account.dn
    user = PamUser(
        configuration=directory.configuration,
        resource=directory,
        title=_free_title(login, directory, taken),
        login=login,
        distinguished_name=account.dn,
        rotation_enabled=True,
        schedule_type=schedules.USE_DEFAULT,
    )
    if template is not None:
        for name in ADOPTED_SCHEDULE_FIELDS:
            setattr(user, name, getattr(template, name))
    return user


def _free_title(login: str, directory: PamDirectory, taken: set[str]) -> str:
    """Return the login as title, or the login and directory, numbered if need be (titles are unique)."""
    limit = PamUser._meta.get_field("title").max_length
    candidates = [login, f"{login} ({directory.title})"]
    candidates += [f"{login} ({directory.title}) {n}" for n in range(2, 1000)]
    for title in candidates:
        title = title[:limit]
        if title not in taken:
            taken.add(title)
            return title
    raise ValidationError({"title": f"no free title for {login}"})


# -- Looking up a DN from a login (registered as records.changes' DN lookup in RotationConfig.ready) ---


@sensitive_variables()
def find_dn(instance: PamUser, directory: PamDirectory) -> str:
    """Return the DN of the one account whose login is the user's, or raise ValidationError saying why not."""
    login = (instance.login or "").strip()
    if not login:
        raise ValidationError("Enter the account's login or its distinguished name.")
    try:
        admin_name, admin_password = admin_bind_name(directory)
        spec = directory_spec(directory)
        matches = ldap.find_accounts(
            spec, admin_name, admin_password, login, directory.user_match, directory.discovery_filter
        )
    except ldap.DirectoryError as exc:
        if not instance.rotation_enabled:
            return ""  # the DN can wait: nothing rotates this account yet
        raise ValidationError(
            f"The distinguished name could not be looked up on {directory}: {exc}. Enter it yourself."
        ) from None
    if not matches:
        raise ValidationError(
            f"No account with the login {login!r} was found on {directory}: check the login, or enter the "
            "distinguished name yourself."
        )
    if len(matches) > 1:
        listed = "; ".join(match.dn for match in matches[:5])
        raise ValidationError(
            f"The login {login!r} matches {len(matches)} accounts on {directory} ({listed}): enter the "
            "distinguished name of the one you mean."
        )
    return matches[0].dn
