"""Which fields people edit on each record, and which of those are rotation settings.

One list per record for every entry point that edits records: the pages' forms (records/forms.py)
and the API's serializers read these, so the API never asks a UI form what a record is made of.
"""

from __future__ import annotations

from records.models import SCHEDULE_FIELDS, WINDOW_FIELDS, PamConfiguration, PamDirectory, PamUser

EDITABLE_FIELDS = {
    PamConfiguration: (
        "title",
        "environment",
        "gateway",
        "application_folder",
        "network_id",
        "network_cidr",
        "port_mapping",
        "rotation_enabled",
        *SCHEDULE_FIELDS,
        "default_password_complexity",
        "manual_rotation_resets_schedule",
        "heartbeat_hours",
        "rotate_when_drifted",
        *WINDOW_FIELDS,
    ),
    PamDirectory: (
        "title",
        "configuration",
        "directory_type",
        "hostname",
        "port",
        "use_ssl",
        "start_tls",
        "verify_certificate",
        "ca_certificate",
        "alternative_ips",
        "domain_name",
        "user_match",
        "discovery_filter",
        "administrative_credential",
    ),
    PamUser: (
        "title",
        "configuration",
        "login",
        "distinguished_name",
        "managed",
        "rotation_enabled",
        "resource",
        "password_complexity",
        *SCHEDULE_FIELDS,
    ),
}

# Changing these needs the right to configure rotation settings (the pages and the API alike).
ROTATION_FIELDS = {
    PamConfiguration: (
        "rotation_enabled",
        *SCHEDULE_FIELDS,
        "default_password_complexity",
        "manual_rotation_resets_schedule",
        "heartbeat_hours",
        "rotate_when_drifted",
        *WINDOW_FIELDS,
    ),
    PamDirectory: (),
    PamUser: ("managed", "rotation_enabled", "resource", "password_complexity", *SCHEDULE_FIELDS),
}
