"""Field rules live on the models: import, the Django admin and the forms refuse the same bad values alike."""

from __future__ import annotations

import io
import json

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import RequestFactory

from records import import_report, imports, keeper
from records.models import DirectoryType, PamConfiguration, PamDirectory, PamUser
from tests.conftest import make_configuration
from tests.test_records_forms import make_ca_pem

FAKE_PEM = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
# Issue 10's probe: every value here used to be stored as it was.
PROBE = {
    "project": "Probe",
    "pam_configuration": {
        "environment": "local",
        "title": "Probe Configuration",
        "network_cidr": "not-a-cidr",
        "port_mapping": ["garbage line"],
    },
    "pam_data": {
        "resources": [
            {
                "type": "pamDirectory",
                "title": "Probe Directory",
                "host": "not a host!!",
                "port": "636",
                "use_ssl": True,
                "directory_type": "openldap",
                "user_match": "this is not a DN",
                "alternative_ips": ["nope"],
                "ca_certificate": FAKE_PEM,
                "users": [
                    {
                        "type": "pamUser",
                        "title": "Probe User",
                        "login": "probe",
                        "distinguished_name": "uid=probe,ou=people,dc=example,dc=test",
                    }
                ],
            }
        ]
    },
}
PROBE_REASONS = {
    ("configuration", "network_cidr"): "CIDR form",
    ("configuration", "port_mapping"): "PORT=NAME",
    ("directory", "hostname"): "Enter a host name",
    ("directory", "user_match"): "not a valid search base",
    ("directory", "alternative_ips"): '"nope" is not an IP address',
    ("directory", "ca_certificate"): "not a PEM X.509 certificate",
}


def nothing_written() -> bool:
    return not (
        PamConfiguration.objects.exists() or PamDirectory.objects.exists() or PamUser.objects.exists()
    )


def assert_one_reason_per_bad_value(rejected: list[import_report.Item]) -> None:
    reasons = {(item.kind, item.reason.split(":")[0]): item.reason for item in rejected}
    assert len(rejected) == len(PROBE_REASONS), [str(item) for item in rejected]
    for key, text in PROBE_REASONS.items():
        assert text in reasons[key], (key, reasons)


@pytest.mark.django_db
def test_the_probe_file_is_rejected_whole_with_one_reason_per_bad_value():
    with pytest.raises(import_report.ImportRejected) as info:
        imports.import_projects(keeper.parse(json.dumps(PROBE)))

    assert_one_reason_per_bad_value(info.value.report.rejected)
    assert nothing_written()


@pytest.mark.django_db
def test_the_probe_file_is_rejected_by_the_command_and_a_dry_run_says_would_have_created(tmp_path):
    path = tmp_path / "probe.json"
    path.write_text(json.dumps(PROBE))
    for args in ((), ("--dry-run",)):
        err = io.StringIO()
        with pytest.raises(CommandError, match="6 errors: the file was rejected and nothing was written"):
            call_command("pam_import", str(path), *args, stdout=io.StringIO(), stderr=err)
        assert "Would have created: 1" in err.getvalue()  # the one valid record
        assert "Created:" not in err.getvalue()
        assert nothing_written()


def admin_form(model, data: dict):
    """Return the Django admin's add form for a model, bound to data."""
    request = RequestFactory().post("/admin/")
    request.user = User.objects.get_or_create(username="root", is_superuser=True, is_staff=True)[0]
    form_class = admin.site._registry[model].get_form(request, obj=None)
    return form_class(data)


@pytest.mark.django_db
def test_the_django_admin_refuses_the_probe_values():
    configuration = admin_form(
        PamConfiguration,
        {
            "title": "Probe Configuration",
            "environment": "local",
            "gateway": "default",
            "network_cidr": "not-a-cidr",
            "port_mapping": "garbage line",
            "schedule_type": "ON_DEMAND",
            "schedule_interval": "1",
            "schedule_tz": "UTC",
            "default_password_complexity": "20,1,1,1,1",
            "heartbeat_hours": "0",
        },
    )
    assert not configuration.is_valid()
    assert {"network_cidr", "port_mapping"} <= set(configuration.errors)

    valid = make_configuration()
    directory = admin_form(
        PamDirectory,
        {
            "title": "Probe Directory",
            "configuration": str(valid.pk),
            "hostname": "not a host!!",
            "port": "636",
            "use_ssl": "on",
            "verify_certificate": "on",
            "directory_type": DirectoryType.OPENLDAP,
            "user_match": "this is not a DN",
            "alternative_ips": "nope",
            "ca_certificate": FAKE_PEM,
        },
    )
    assert not directory.is_valid()
    assert {"hostname", "user_match", "alternative_ips", "ca_certificate"} <= set(directory.errors)
    assert "Enter a host name" in directory.errors["hostname"][0]

    user = admin_form(
        PamUser,
        {
            "title": "Probe User",
            "configuration": str(valid.pk),
            "login": "probe",
            "distinguished_name": "this is not a DN",
            "rotation_type": "general",
            "schedule_type": "ON_DEMAND",
            "schedule_interval": "1",
            "schedule_tz": "UTC",
        },
    )
    assert not user.is_valid()
    assert "not a valid distinguished name" in user.errors["distinguished_name"][0]
    assert nothing_written() is False and not PamDirectory.objects.exists() and not PamUser.objects.exists()


@pytest.mark.django_db
def test_full_clean_refuses_each_bad_value_on_its_field():
    configuration = PamConfiguration(title="x", network_cidr="not-a-cidr", port_mapping="389=ldap\nbad")
    with pytest.raises(ValidationError) as info:
        configuration.full_clean()
    assert set(info.value.message_dict) == {"network_cidr", "port_mapping"}
    assert "Line 2" in info.value.message_dict["port_mapping"][0]

    directory = PamDirectory(
        title="d",
        configuration=make_configuration(),
        hostname="300.1.1.1",
        port=70000,
        directory_type=DirectoryType.OPENLDAP,
        user_match="people",
        alternative_ips="10.0.0.1, ldap.example.com",
        ca_certificate="hello",
    )
    with pytest.raises(ValidationError) as info:
        directory.full_clean()
    assert {"hostname", "port", "user_match", "alternative_ips", "ca_certificate"} <= set(
        info.value.message_dict
    )
    assert info.value.message_dict["port"] == ["The port must be a number from 1 to 65535."]


@pytest.mark.django_db
def test_every_entry_point_stores_the_same_normal_form(tmp_path):
    configuration = PamConfiguration(
        title="Normal", network_cidr=" 10.0.0.7/24 ", port_mapping="32636 = ldaps\n\n389=ldap"
    )
    configuration.full_clean()
    assert (configuration.network_cidr, configuration.port_mapping) == (
        "10.0.0.0/24",
        "32636=ldaps\n389=ldap",
    )
    configuration.save()
    directory = PamDirectory(
        title="Normal LDAP",
        configuration=configuration,
        hostname=" ldap.example.com ",
        directory_type=DirectoryType.OPENLDAP,
        alternative_ips="10.0.0.2, 10.0.0.3\nfe80::1",
        ca_certificate="\n" + make_ca_pem() + "\n\n",
        user_match=" ou=people,dc=example,dc=com ",
    )
    directory.full_clean()
    assert directory.hostname == "ldap.example.com"
    assert directory.alternative_ips == "10.0.0.2\n10.0.0.3\nfe80::1"
    assert directory.user_match == "ou=people,dc=example,dc=com"
    assert directory.ca_certificate.startswith("-----BEGIN") and directory.ca_certificate.endswith("-----")

    # The import stores what the form and full_clean store.
    imports.import_projects(
        keeper.parse(
            json.dumps(
                {
                    "pam_configuration": {
                        "title": "Imported",
                        "network_cidr": "10.0.0.7/24",
                        "port_mapping": ["32636 = ldaps", " ", "389=ldap"],
                    },
                    "pam_data": {
                        "resources": [
                            {
                                "title": "Imported LDAP",
                                "host": "ldap.example.com",
                                "directory_type": "openldap",
                                "alternative_ips": "10.0.0.2, 10.0.0.3",
                            }
                        ]
                    },
                }
            )
        )
    )
    imported = PamConfiguration.objects.get(title="Imported")
    assert (imported.network_cidr, imported.port_mapping) == ("10.0.0.0/24", "32636=ldaps\n389=ldap")
    assert PamDirectory.objects.get(title="Imported LDAP").alternative_ips == "10.0.0.2\n10.0.0.3"


@pytest.mark.django_db
def test_a_cron_that_never_fires_is_a_message_not_a_server_error():
    configuration = PamConfiguration(title="Never", schedule_type="CRON", schedule_cron="0 0 31 2 *")
    with pytest.raises(ValidationError) as info:
        configuration.full_clean()
    assert "never fires" in info.value.message_dict["schedule_cron"][0]
