"""Export configurations with their directories and users as Keeper project documents (pam_export)."""

from __future__ import annotations

from records.keeper_schedules import schedule_json
from records.models import DirectoryType, Environment, PamConfiguration, PamUser

# Directory connection protocol written on export: Keeper's importer drops a connection without one.
EXPORT_PROTOCOL = {DirectoryType.ACTIVE_DIRECTORY: "rdp", DirectoryType.OPENLDAP: "ssh"}
# Keys other apps read and write on configurations, directories and users (scripts/ registers
# "scripts"; records never imports it): key -> function(record) returning the value to export, or None.
EXTRA_EXPORTS: dict = {}


def _user_json(user: PamUser, include_secrets: bool, nested: bool) -> dict:
    out = {"uid": user.uid, "type": "pamUser", "title": user.title, "login": user.login}
    if include_secrets and user.has_password:
        out["password"] = user.get_password()
    out["distinguished_name"] = user.distinguished_name
    out["managed"] = user.managed
    rotation = {"rotation": user.rotation_type}
    if user.resource_id and not nested:
        rotation["resource"] = user.resource.title
    rotation["enabled"] = "on" if user.rotation_enabled else "off"
    schedule = schedule_json(user)
    if schedule is not None:
        rotation["schedule"] = schedule
    if user.password_complexity:
        rotation["password_complexity"] = user.password_complexity
    out["rotation_settings"] = rotation
    return extra_keys(user, out)


def extra_keys(record, out: dict) -> dict:
    """Add the registered extra keys (EXTRA_EXPORTS) a record has to its exported entry; return the entry."""
    for key, export in EXTRA_EXPORTS.items():
        value = export(record)
        if value is not None:
            out[key] = value
    return out


def _directory_json(directory) -> dict:
    entry = {
        "uid": directory.uid,
        "type": "pamDirectory",
        "title": directory.title,
        "host": directory.hostname,
        "port": str(directory.port),
        "use_ssl": directory.use_ssl,
        "start_tls": directory.start_tls,
        "domain_name": directory.domain_name,
        "directory_type": directory.directory_type,
        "alternative_ips": directory.alternative_ip_list,
        "user_match": directory.user_match,
        "ca_certificate": directory.ca_certificate,
        "verify_certificate": directory.verify_certificate,
    }
    if directory.administrative_credential is not None:
        entry["pam_settings"] = {
            "connection": {
                "protocol": EXPORT_PROTOCOL.get(directory.directory_type, "rdp"),
                "administrative_credentials": directory.administrative_credential.title,
            }
        }
    return extra_keys(directory, entry)


def domain_directory(configuration: PamConfiguration):
    """Return the Domain Controller of a domain configuration (its first Active Directory), or None."""
    return (
        configuration.directories.filter(directory_type=DirectoryType.ACTIVE_DIRECTORY)
        .select_related("administrative_credential")
        .order_by("pk")
        .first()
    )


def export_project(configuration: PamConfiguration, *, include_secrets: bool = False) -> dict:
    """Return one configuration with its directories and users as a Keeper project document."""
    config = {
        "uid": configuration.uid,
        "environment": configuration.environment,
        "title": configuration.title,
        "gateway_name": configuration.gateway,
        "rotation": "on" if configuration.rotation_enabled else "off",
        "port_mapping": [line.strip() for line in configuration.port_mapping.splitlines() if line.strip()],
        "default_rotation_schedule": schedule_json(configuration),
        "network_id": configuration.network_id,
        "network_cidr": configuration.network_cidr,
        "default_password_complexity": configuration.default_password_complexity,
        "application_folder": configuration.application_folder,
        "manual_rotation_resets_schedule": configuration.manual_rotation_resets_schedule,
    }
    extra_keys(configuration, config)
    domain = domain_directory(configuration) if configuration.environment == Environment.DOMAIN else None
    if domain is not None:
        config.update(
            {
                "dom_domain_id": domain.domain_name,
                "dom_hostname": domain.hostname,
                "dom_port": str(domain.port),
                "dom_use_ssl": domain.use_ssl,
                "dom_user_match": domain.user_match,
            }
        )
        if domain.administrative_credential is not None:
            config["dom_administrative_credential"] = domain.administrative_credential.title
        del config["network_cidr"]
        config["dom_network_cidr"] = configuration.network_cidr
    users = list(configuration.users.select_related("resource").order_by("title"))
    resources = []
    directories = configuration.directories.select_related("administrative_credential").order_by("title")
    for directory in directories:
        if domain is not None and directory.pk == domain.pk:
            continue
        entry = _directory_json(directory)
        entry["users"] = [
            _user_json(user, include_secrets, nested=True)
            for user in users
            if user.resource_id == directory.pk
        ]
        resources.append(entry)
    # A user whose directory belongs to another configuration cannot nest here; it names it instead.
    # A domain configuration's users are its own (Keeper: their parent is the configuration).
    own = {entry["title"] for entry in resources}
    loose = [
        _user_json(user, include_secrets, nested=domain is not None and user.resource_id == domain.pk)
        for user in users
        if user.resource_id is None or user.resource.title not in own
    ]
    return {
        "_comment": "Exported by pamrotate in Keeper's pam project import format.",
        "project": configuration.title,
        "pam_configuration": config,
        "pam_data": {"resources": resources, "users": loose},
    }


def export_document(configurations, *, include_secrets: bool = False) -> dict | list:
    """Return one project document, or a list of them (pamrotate's own) when there are several."""
    projects = [export_project(c, include_secrets=include_secrets) for c in configurations]
    return projects[0] if len(projects) == 1 else projects
