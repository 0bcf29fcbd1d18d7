"""Create the records for accounts on a test directory: used by benchmarks and child processes."""

from __future__ import annotations

import datetime as dt


def seed_directory(
    *,
    prefix: str,
    host: str,
    port: int,
    ca_pem: str,
    directory_type: str,
    admin_dn: str,
    admin_password: str,
    accounts: list[tuple[str, str]],
    password: str,
    **user_fields,
):
    """Create a configuration, its rotator credential, a directory and one daily-scheduled PAM user
    (rotation on) per (login, dn); return the directory and the users in creation order."""
    from records import schedules
    from records.models import PamConfiguration, PamDirectory, PamUser

    configuration = PamConfiguration.objects.create(title=f"{prefix} configuration")
    admin = PamUser(
        configuration=configuration, title=f"{prefix} admin", login=admin_dn, distinguished_name=admin_dn
    )
    admin.set_password(admin_password)
    admin.save()
    directory = PamDirectory.objects.create(
        title=f"{prefix} directory",
        configuration=configuration,
        hostname=host,
        port=port,
        use_ssl=True,
        ca_certificate=ca_pem,
        directory_type=directory_type,
        domain_name="example.test",
        administrative_credential=admin,
    )
    fields = {
        "schedule_type": schedules.DAILY,
        "schedule_time": dt.time(3, 0),
        "schedule_tz": "UTC",
        **user_fields,
    }
    users = []
    for login, dn in accounts:
        user = PamUser(
            configuration=configuration,
            title=f"{prefix} {login}",
            login=login,
            distinguished_name=dn,
            resource=directory,
            rotation_enabled=True,
            **fields,
        )
        user.set_password(password)
        users.append(user)
    PamUser.objects.bulk_create(users, batch_size=500)
    return directory, list(
        PamUser.objects.filter(resource=directory).select_related("resource").order_by("pk")
    )
