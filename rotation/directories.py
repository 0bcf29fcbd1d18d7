"""How pamrotate reaches a PAM Directory: its connection settings, its admin bind, Keeper's connection test."""

from __future__ import annotations

from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from audit import events as audit
from audit.actors import SYSTEM_ACTOR, Actor
from audit.models import AuditEvent, Category, Outcome
from records.models import DirectoryType, PamDirectory, PamUser
from rotation import ldap


def directory_spec(directory: PamDirectory) -> ldap.DirectorySpec:
    """Return the connection settings of a directory for rotation/ldap/."""
    return ldap.DirectorySpec(
        host=directory.hostname,
        port=directory.port,
        use_ssl=directory.use_ssl,
        start_tls=directory.start_tls,
        ca_certificate=directory.ca_certificate,
        verify_certificate=directory.verify_certificate,
        directory_type="ad" if directory.directory_type == DirectoryType.ACTIVE_DIRECTORY else "openldap",
        alternative_ips=tuple(directory.alternative_ip_list),
        connect_timeout=float(settings.LDAP_CONNECT_TIMEOUT),
        operation_timeout=float(settings.LDAP_OPERATION_TIMEOUT),
    )


@sensitive_variables()
def admin_bind_name(directory: PamDirectory) -> tuple[str, str]:
    """Return the bind name and password of a directory's administrative credential."""
    admin = directory.administrative_credential
    if admin is None:
        raise ldap.DirectoryError(
            ldap.DirectoryError.CONFIGURATION,
            f"the directory {directory} has no administrative credential: link one on its page",
        )
    if not admin.has_password:
        raise ldap.DirectoryError(
            ldap.DirectoryError.CONFIGURATION,
            f"the administrative credential {admin} has no stored password",
        )
    return admin.distinguished_name or admin.login, admin.get_password()


def is_self_change(user: PamUser) -> bool:
    """Return whether rotating this user means changing the directory's own admin credential."""
    return user.resource is not None and user.resource.administrative_credential_id == user.pk


@sensitive_variables()
def test_connection(directory: PamDirectory, *, actor: Actor = SYSTEM_ACTOR) -> list:
    """Run Keeper's LDP-style check against a directory and record it (``actor`` asked)."""
    try:
        admin_name, admin_password = admin_bind_name(directory)
    except ldap.DirectoryError as exc:
        steps = [ldap.Step("Administrative credential", False, exc.message)]
    else:
        steps = ldap.test_connection(directory_spec(directory), admin_name, admin_password)
    ok = all(step.ok for step in steps)
    audit.record_event(
        AuditEvent.CONNECTION_TESTED,
        instance=directory,
        actor=actor,
        outcome=Outcome.OK if ok else Outcome.FAIL,
        message="; ".join(f"{step.name}: {'ok' if step.ok else step.message}" for step in steps),
        category=Category.DIRECTORY,
    )
    return steps
