"""Keeper project JSON: import, export, re-import and the all-or-nothing rejection of bad files."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from records import schedules
from records.models import PamConfiguration, PamDirectory, PamUser
from rotation.models import AuditEvent

SAMPLE = Path(__file__).parent / "data" / "keeper_project.json"
CONFIGURATION_FIELDS = [
    "environment",
    "gateway",
    "application_folder",
    "network_id",
    "network_cidr",
    "port_mapping",
    "rotation_enabled",
    "default_password_complexity",
    "manual_rotation_resets_schedule",
    "schedule_type",
    "schedule_time",
    "schedule_interval",
    "schedule_weekday",
    "schedule_day",
    "schedule_week",
    "schedule_cron",
    "schedule_tz",
]
DIRECTORY_FIELDS = [
    "hostname",
    "port",
    "use_ssl",
    "start_tls",
    "ca_certificate",
    "verify_certificate",
    "alternative_ips",
    "domain_name",
    "directory_type",
    "user_match",
]
USER_FIELDS = [
    "login",
    "distinguished_name",
    "managed",
    "rotation_enabled",
    "password_complexity",
    "schedule_type",
    "schedule_time",
    "schedule_interval",
    "schedule_weekday",
    "schedule_day",
    "schedule_week",
    "schedule_cron",
    "schedule_tz",
]


def sample() -> dict:
    return json.loads(SAMPLE.read_text())


def write(tmp_path, data, name="project.json") -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def run_import(path: str, *args) -> str:
    out = io.StringIO()
    call_command("pam_import", path, *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def snapshot() -> dict:
    """Return every record's fields, by title, links by title and passwords in clear."""
    return {
        "configurations": {
            c.title: {f: getattr(c, f) for f in CONFIGURATION_FIELDS} for c in PamConfiguration.objects.all()
        },
        "directories": {
            d.title: {
                **{f: getattr(d, f) for f in DIRECTORY_FIELDS},
                "configuration": d.configuration.title,
                "administrative_credential": d.administrative_credential.title
                if d.administrative_credential
                else None,
            }
            for d in PamDirectory.objects.all()
        },
        "users": {
            u.title: {
                **{f: getattr(u, f) for f in USER_FIELDS},
                "configuration": u.configuration.title,
                "resource": u.resource.title if u.resource else None,
                "password": u.get_password(),
                "next_rotation_at": u.next_rotation_at,
            }
            for u in PamUser.objects.all()
        },
    }


def nothing_written() -> bool:
    return not (
        PamConfiguration.objects.exists() or PamDirectory.objects.exists() or PamUser.objects.exists()
    )


# -- The sample imports ---------------------------------------------------------------------------


def test_the_sample_project_imports_every_key(db):
    out = run_import(str(SAMPLE))

    assert "Created: 10" in out
    configuration = PamConfiguration.objects.get(title="Sample Project Configuration")
    assert configuration.gateway == "sample-gateway"
    assert configuration.port_mapping == "32636=ldaps\n3389=rdp"
    assert (configuration.network_id, configuration.network_cidr) == ("sample-net", "192.168.10.0/24")
    assert configuration.schedule_type == schedules.CRON and configuration.schedule_tz == "Europe/Berlin"
    assert configuration.default_password_complexity == "24,2,2,2,2"

    ad = PamDirectory.objects.get(title="Sample AD")
    assert ad.directory_type == "active_directory" and ad.port == 636 and ad.use_ssl
    assert ad.alternative_ip_list == ["10.0.0.11", "10.0.0.12"]
    assert ad.ca_certificate.startswith("-----BEGIN CERTIFICATE-----") and ad.verify_certificate
    assert ad.administrative_credential.title == "Sample AD Admin"
    ldap = PamDirectory.objects.get(title="Sample OpenLDAP")
    assert not ldap.verify_certificate
    assert ldap.administrative_credential.title == "Sample LDAP Rotator"  # named by login

    admin = PamUser.objects.get(title="Sample AD Admin")
    assert admin.resource == ad and admin.get_password() == "Admin-Start-Pass-1!"
    assert admin.schedule_type == schedules.MONTHLY_BY_DAY and admin.schedule_day == 1
    assert admin.password_complexity == "32,5,5,5,5"
    assert admin.next_rotation_at is not None
    assert admin.password_encrypted and "Admin-Start-Pass-1!" not in admin.password_encrypted

    backup = PamUser.objects.get(title="Sample svc-backup")  # from the profile "weekly-sunday"
    assert backup.schedule_type == schedules.WEEKLY and backup.schedule_weekday == 6
    assert backup.password_complexity == "32,5,5,5,5" and backup.rotation_enabled

    deploy = PamUser.objects.get(title="Sample app-deploy")
    assert deploy.resource == ldap and deploy.schedule_type == schedules.CRON
    assert deploy.schedule_cron == "0 0 2 ? * 1" and deploy.schedule_tz == "America/New_York"

    reporting = PamUser.objects.get(title="Sample svc-reporting")
    assert reporting.schedule_type == schedules.MONTHLY_BY_WEEKDAY
    assert (reporting.schedule_weekday, reporting.schedule_week) == (4, -1)

    daily = PamUser.objects.get(title="Sample daily-job")
    assert daily.schedule_type == schedules.DAILY and daily.schedule_interval == 3
    assert not daily.rotation_enabled and daily.next_rotation_at is None

    assert PamUser.objects.get(title="Sample on-demand").schedule_type == schedules.ON_DEMAND
    rotator = PamUser.objects.get(title="Sample LDAP Rotator")
    assert rotator.managed and rotator.schedule_type == schedules.USE_DEFAULT


def test_each_created_record_is_audited_with_the_os_user(db, monkeypatch):
    monkeypatch.setattr("getpass.getuser", lambda: "ops-maria")
    run_import(str(SAMPLE))

    events = AuditEvent.objects.filter(event=AuditEvent.RECORD_CREATED)
    assert events.count() == 10
    assert set(events.values_list("actor_name", flat=True)) == {"ops-maria"}
    assert not any("Pass-1!" in event.message for event in events)


def test_importing_twice_changes_nothing(db):
    run_import(str(SAMPLE))
    before = snapshot()
    events = AuditEvent.objects.count()

    out = run_import(str(SAMPLE))

    assert "Created: 0" in out and "Skipped: 10" in out
    assert snapshot() == before
    assert AuditEvent.objects.count() == events


def test_a_dry_run_writes_nothing(db):
    out = run_import(str(SAMPLE), "--dry-run")

    assert "Would create: 10" in out and "nothing was written" in out
    assert nothing_written()
    assert not AuditEvent.objects.exists()


def test_export_then_import_into_an_empty_database_gives_the_same_records(db, tmp_path):
    run_import(str(SAMPLE))
    before = snapshot()
    exported = tmp_path / "export.json"
    call_command("pam_export", "--include-secrets", "-o", str(exported), stderr=io.StringIO())
    assert exported.stat().st_mode & 0o777 == 0o600

    PamDirectory.objects.update(administrative_credential=None)
    PamUser.objects.all().delete()
    PamDirectory.objects.all().delete()
    PamConfiguration.objects.all().delete()
    run_import(str(exported))

    after = snapshot()
    for kind in ("configurations", "directories", "users"):
        assert after[kind].keys() == before[kind].keys()
        for title, fields in before[kind].items():
            for name, value in fields.items():
                assert after[kind][title][name] == value, f"{kind} {title}: {name}"


def test_export_leaves_passwords_out_unless_asked(db):
    run_import(str(SAMPLE))
    out = io.StringIO()
    call_command("pam_export", stdout=out)

    text = out.getvalue()
    assert "Pass-1!" not in text
    document = json.loads(text)
    assert document["pam_configuration"]["title"] == "Sample Project Configuration"
    assert not AuditEvent.objects.filter(event="record_password_export").exists()


def test_exporting_secrets_is_audited_without_the_secret(db, monkeypatch):
    monkeypatch.setattr("getpass.getuser", lambda: "ops-maria")
    run_import(str(SAMPLE))
    out = io.StringIO()
    call_command(
        "pam_export", "--include-secrets", "--configuration", "Sample Project Configuration", stdout=out
    )

    assert "Admin-Start-Pass-1!" in out.getvalue()
    events = AuditEvent.objects.filter(event="record_password_export")
    assert events.count() == PamUser.objects.exclude(password_encrypted="").count()
    assert {(e.category, e.actor_name) for e in events} == {("security", "ops-maria")}
    assert not any("Pass-1!" in e.message for e in events)


def test_exporting_an_unknown_configuration_is_a_clear_error(db):
    with pytest.raises(CommandError, match="no configuration is titled 'Nope'"):
        call_command("pam_export", "--configuration", "Nope", stdout=io.StringIO())


# -- Warnings and comments -----------------------------------------------------------------------


def test_unknown_keys_are_warnings_and_comment_keys_are_ignored(db, tmp_path):
    data = sample()
    data["pam_configuration"]["connections"] = "on"
    data["pam_data"]["users"][0]["otp"] = "otpauth://x"
    data["pam_data"]["users"][0]["_comment"] = "ignored quietly"

    out = run_import(write(tmp_path, data))

    assert 'key "connections" is not used by pamrotate; ignored' in out
    assert 'pam_data.users[0]: key "otp" is not used' in out
    assert "_comment" not in out and "_note" not in out
    assert PamUser.objects.count() == 7


# -- Rejecting bad files whole --------------------------------------------------------------------


def test_bad_json_reports_its_line_and_column(db, tmp_path):
    text = SAMPLE.read_text().replace(
        '"gateway_name": "sample-gateway",', '"gateway_name": "sample-gateway"', 1
    )

    with pytest.raises(CommandError, match=r"invalid JSON at line 8, column 5"):
        run_import(write(tmp_path, text))
    assert nothing_written()


def rejected(tmp_path, data) -> str:
    with pytest.raises(CommandError) as info:
        call_command("pam_import", write(tmp_path, data), stdout=io.StringIO(), stderr=(err := io.StringIO()))
    assert nothing_written()
    assert not AuditEvent.objects.exists()
    return str(info.value) + "\n" + err.getvalue()


def test_an_unknown_directory_type_rejects_the_whole_file(db, tmp_path):
    data = sample()
    data["pam_data"]["resources"][1]["directory_type"] = "novell"

    message = rejected(tmp_path, data)

    assert "unknown directory_type 'novell'" in message and "nothing was written" in message


def test_a_user_whose_resource_does_not_exist_rejects_the_whole_file(db, tmp_path):
    data = sample()
    data["pam_data"]["users"][1]["rotation_settings"]["resource"] = "No Such Directory"

    assert "its resource 'No Such Directory' does not exist" in rejected(tmp_path, data)


@pytest.mark.parametrize(
    "schedule, expected",
    [
        ({"type": "CRON", "cron": "every tuesday"}, "cron expression has 5 fields"),
        ({"type": "CRON", "cron": "*/5 * * * *"}, "at most once an hour"),
        ({"type": "CRON", "cron": "0 2 * * 0", "tz": "Mars/Olympus"}, "not an IANA time zone"),
        ({"type": "WEEKLY", "weekday": "FUNDAY", "time": "02:00"}, "weekday must be one of"),
        ({"type": "DAILY", "time": "25:99"}, "time must be"),
        ({"type": "RUN_ONCE", "time": "2000-01-01T00:00:00"}, "is not supported"),
        ({"type": "YEARLY", "time": "02:00", "month": "JANUARY"}, "monthDay must be a day of the month"),
        (
            {"type": "MONTHLY_BY_WEEKDAY", "weekday": "MONDAY", "occurrence": "FIFTH", "time": "01:00"},
            "occurrence",
        ),
    ],
)
def test_an_unparseable_schedule_rejects_the_whole_file(db, tmp_path, schedule, expected):
    data = sample()
    data["pam_data"]["users"][1]["rotation_settings"]["schedule"] = schedule

    assert expected in rejected(tmp_path, data)


def test_active_directory_without_ssl_rejects_the_whole_file(db, tmp_path):
    data = sample()
    data["pam_data"]["resources"][0]["use_ssl"] = False

    assert "Active Directory requires LDAPS" in rejected(tmp_path, data)


def test_an_impossible_complexity_rejects_the_whole_file(db, tmp_path):
    data = sample()
    data["pam_data"]["users"][1]["rotation_settings"]["password_complexity"] = "8,5,5,5,5"

    assert "more than the length" in rejected(tmp_path, data)


def test_a_missing_rotation_profile_rejects_the_whole_file(db, tmp_path):
    data = sample()
    data["pam_data"]["users"][2]["rotation_settings"]["profile"] = "nightly"

    assert "rotation profile 'nightly' is not in this file" in rejected(tmp_path, data)


def test_a_title_twice_in_the_file_rejects_it(db, tmp_path):
    data = sample()
    data["pam_data"]["users"].append(copy.deepcopy(data["pam_data"]["users"][1]))

    assert "appears twice in the file" in rejected(tmp_path, data)


def test_a_missing_file_is_a_clear_error(db, tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        run_import(str(tmp_path / "missing.json"))
