"""Field rules for the PAM records, attached to the model fields so `full_clean()` enforces them everywhere.

The UI forms, the Keeper import, the Django admin, the CLI and the API all validate through the
model; nothing here knows which of them is asking. Each ``normal_*`` function returns the stored
form of a valid value (and an invalid one unchanged), for the models' ``clean`` methods.
"""

from __future__ import annotations

import functools
import ipaddress
import re

from cryptography import x509
from django.core.exceptions import ValidationError
from ldap3.utils.dn import parse_dn

from records import schedules
from records.complexity import Complexity, ComplexityError

# One DNS label: letters, digits and inner hyphens, at most 63 characters.
DNS_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
PORT_MAPPING_LINE = re.compile(r"^(\d{1,5})\s*=\s*([A-Za-z0-9][A-Za-z0-9_.-]*)$")
DN_EXAMPLE = '"CN=svc-backup,OU=Service,DC=example,DC=com"'


def is_ip_address(value: str) -> bool:
    """Return whether the text is an IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def is_hostname(value: str) -> bool:
    """Return whether the text is a DNS name (RFC 1123 labels, at most 253 characters)."""
    name = value[:-1] if value.endswith(".") else value
    if not name or len(name) > 253:
        return False
    labels = name.split(".")
    # An all-numeric last label would be a mistyped IPv4 address, not a name.
    return all(DNS_LABEL.match(label) for label in labels) and not labels[-1].isdigit()


def validate_host(value: str) -> None:
    """Reject a directory address that is neither a host name nor an IP address."""
    value = value.strip()
    if not (is_ip_address(value) or is_hostname(value)):
        raise ValidationError('Enter a host name such as "ldap.example.com" or an IP address.', code="host")


def validate_port(value: int) -> None:
    """Reject a TCP port outside 1-65535."""
    if value is None or not 1 <= value <= 65535:
        raise ValidationError("The port must be a number from 1 to 65535.", code="port")


def _check_dn(value: str, what: str) -> None:
    value = value.strip()
    if not value:
        return
    try:
        parse_dn(value)
    except Exception:  # ldap3 raises several types (and IndexError) on malformed input
        raise ValidationError(f"This is not a valid {what}; write it like {DN_EXAMPLE}.", code="dn") from None


def validate_distinguished_name(value: str) -> None:
    """Reject an account DN that ldap3 cannot parse."""
    _check_dn(value, "distinguished name")


def validate_search_base(value: str) -> None:
    """Reject a user match (search base) that is not a DN."""
    _check_dn(value, "search base (distinguished name)")


def _addresses(text: str) -> list[str]:
    return [item.strip() for item in text.replace(",", "\n").splitlines() if item.strip()]


def validate_alternative_ips(value: str) -> None:
    """Reject alternative addresses (one a line, or comma-separated) that are not all IP addresses."""
    for address in _addresses(value):
        if not is_ip_address(address):
            raise ValidationError(
                f'"{address[:60]}" is not an IP address; list one IP address a line.', code="alternative_ips"
            )


def normal_alternative_ips(value: str) -> str:
    """Return the alternative addresses one a line."""
    return "\n".join(_addresses(value))


def validate_ca_certificate(value: str) -> None:
    """Reject text that is not one or more PEM X.509 certificates."""
    value = value.strip()
    if not value:
        return
    try:
        x509.load_pem_x509_certificates(value.encode())
    except (ValueError, TypeError):
        raise ValidationError(
            "This is not a PEM X.509 certificate: paste the CA certificate including the "
            '"-----BEGIN CERTIFICATE-----" and "-----END CERTIFICATE-----" lines.',
            code="pem",
        ) from None


def validate_network_cidr(value: str) -> None:
    """Reject a network that is not in CIDR form (host bits may be set; they are cleared on save)."""
    value = value.strip()
    if not value:
        return
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValidationError('Write the network in CIDR form, like "10.0.0.0/24".', code="cidr") from None


def normal_network_cidr(value: str) -> str:
    """Return the network in canonical CIDR form ("10.0.0.7/24" → "10.0.0.0/24")."""
    value = value.strip()
    try:
        return str(ipaddress.ip_network(value, strict=False)) if value else ""
    except ValueError:
        return value


def _port_mappings(value: str) -> list[tuple[int, str, str | None]]:
    """Return (line number, normal line, error) for each non-blank line of a port mapping."""
    out = []
    for number, line in enumerate(value.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        match = PORT_MAPPING_LINE.match(line)
        if not match or not 1 <= int(match.group(1)) <= 65535:
            out.append((number, line, "bad"))
        else:
            out.append((number, f"{int(match.group(1))}={match.group(2)}", None))
    return out


def validate_port_mapping(value: str) -> None:
    """Reject port mapping lines that are not PORT=NAME with a port from 1 to 65535."""
    for number, _line, error in _port_mappings(value):
        if error:
            raise ValidationError(
                f'Line {number}: write one mapping a line as PORT=NAME, like "32636=ldaps", '
                "with a port from 1 to 65535.",
                code="port_mapping",
            )


def normal_port_mapping(value: str) -> str:
    """Return the mappings as PORT=NAME lines without blanks or spaces."""
    return "\n".join(line for _number, line, _error in _port_mappings(value))


def validate_complexity(value: str) -> None:
    """Reject a complexity that cannot be parsed or satisfied."""
    try:
        Complexity.parse(value)
    except ComplexityError as exc:
        raise ValidationError(str(exc), code="complexity") from None


@functools.lru_cache(maxsize=1024)
def _schedule_problem(schedule: schedules.Schedule) -> str:
    # Cached: an import of thousands of users shares a handful of schedules, and a CRON check walks 50 runs.
    try:
        schedule.validate()
    except schedules.ScheduleError as exc:
        return str(exc)
    except ValueError:  # croniter finds no run at all, e.g. "0 0 31 2 *"
        return "this cron expression never fires; pick a date that exists"
    return ""


def validate_schedule(schedule: schedules.Schedule) -> None:
    """Raise ValidationError, on the field to fix, when a schedule cannot run as written."""
    problem = _schedule_problem(schedule)
    if problem:
        field = "schedule_cron" if schedule.type == schedules.CRON else "schedule_type"
        if "time zone" in problem:
            field = "schedule_tz"
        raise ValidationError({field: problem})


def validate_window_weekdays(value: str) -> None:
    """Reject window days that are not distinct digits 0 (Monday) to 6 (Sunday)."""
    if not value or any(ch not in "0123456" for ch in value) or len(set(value)) != len(value):
        raise ValidationError('write the weekdays as digits, 0 = Monday … 6 = Sunday, e.g. "01234"')
