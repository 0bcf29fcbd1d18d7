"""Keeper project JSON: import, export, re-import and the all-or-nothing rejection of bad files."""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import sqlite3
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.models import AuditEvent
from records import import_report, imports, keeper, keeper_schedules, schedules
from records.models import PamConfiguration, PamDirectory, PamUser, RotationType
from tests import test_import_view
from tests.conftest import examples, make_configuration, make_directory

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


# -- Keeper's real files (issue 14) ---------------------------------------------------------------

DATA = Path(__file__).parent / "data"


def report_of(data) -> import_report.ImportReport:
    """Import a document (or a file in tests/data) and return the report."""
    text = (DATA / data).read_text() if isinstance(data, str) else json.dumps(data)
    return imports.import_projects(keeper.parse(text))


def test_keepers_minimal_template_imports_with_keepers_default_title(db):
    report = report_of("keeper_minimal.json")

    configuration = PamConfiguration.objects.get()
    assert configuration.title == "Project 1 Configuration" and configuration.environment == "local"
    assert [str(item) for item in report.created] == ["configuration 'Project 1 Configuration'"]


def test_keepers_generator_output_imports_its_directory_and_admin_and_skips_the_machines(db):
    report = report_of("keeper_generator.json")

    configuration = PamConfiguration.objects.get(title="Project1 Configuration")
    directory = PamDirectory.objects.get(title="Project1 AD")
    assert (
        directory.configuration == configuration and directory.port == 636 and directory.is_active_directory
    )
    assert directory.administrative_credential.title == "DomainAdmin"
    admin = PamUser.objects.get(title="DomainAdmin")
    assert admin.get_password() == "Gen-Domain-Admin-Pass-1" and admin.resource == directory
    assert not admin.rotation_enabled  # Keeper's generator writes no DN
    assert "'DomainAdmin' has no distinguished_name, so its rotation is off" in " ".join(report.warnings)
    assert {item.title for item in report.skipped} == {"server1", "server2"}
    assert PamUser.objects.count() == 1
    assert any("pamMachine 'server1' skipped with its users" in warning for warning in report.warnings)


def test_a_domain_controller_configuration_becomes_a_configuration_and_its_ad_directory(db):
    report = report_of("keeper_domain.json")

    configuration = PamConfiguration.objects.get(title="Corp Configuration")
    assert configuration.environment == "domain" and configuration.network_cidr == "10.20.0.0/16"
    assert configuration.gateway == "corp-gateway"
    dc = PamDirectory.objects.get(title="PAM Directory - corp.example.test")
    assert (dc.hostname, dc.port, dc.use_ssl, dc.directory_type) == (
        "dc1.corp.example.test",
        636,
        True,
        "active_directory",
    )
    assert (
        dc.domain_name == "corp.example.test"
        and dc.user_match == "OU=Office Users,DC=corp,DC=example,DC=test"
    )
    # dom_administrative_credential names the admin by login (its title did not match).
    assert dc.administrative_credential.title == "Domain Admin"
    # The domain's own users rotate through the Domain Controller; scripts-only ones need no directory.
    assert PamUser.objects.get(title="Domain Admin").resource == dc
    scripts = PamUser.objects.get(title="app-deploy scripts")
    assert scripts.rotation_type == RotationType.SCRIPTS_ONLY and scripts.resource is None
    assert scripts.rotation_enabled and scripts.next_rotation_at is not None
    assert (scripts.schedule_type, scripts.schedule_weekday, scripts.schedule_time) == (
        schedules.WEEKLY,
        6,
        dt.time(15, 44),
    )
    assert "dom_scan_dc_cidr" in " ".join(report.warnings)
    assert ("user", "Intranet login", "login records are not rotated by pamrotate") in {
        (item.kind, item.title, item.reason) for item in report.skipped
    }
    assert any("login record 'Intranet login' skipped" in warning for warning in report.warnings)


def test_keepers_schedule_spellings_and_profile_names_import(db):
    report_of("keeper_domain.json")

    backup = PamUser.objects.get(title="PAM User - svc-backup")  # Keeper's default title; profile by name
    assert backup.password_complexity == "32,5,5,5,5"
    assert (backup.schedule_type, backup.schedule_interval, backup.schedule_time, backup.schedule_tz) == (
        schedules.DAILY,
        2,
        dt.time(1, 30),
        "Europe/Berlin",
    )
    yearly = PamUser.objects.get(title="svc-yearly")
    assert (yearly.schedule_type, yearly.schedule_cron) == (schedules.CRON, "0 6 15 3 *")
    monthly = PamUser.objects.get(title="svc-monthly")
    assert (monthly.schedule_type, monthly.schedule_day, monthly.schedule_time) == (
        schedules.MONTHLY_BY_DAY,
        10,
        dt.time(22, 0),
    )
    tuesday = PamUser.objects.get(title="svc-second-tuesday")
    assert (tuesday.schedule_type, tuesday.schedule_weekday, tuesday.schedule_week) == (
        schedules.MONTHLY_BY_WEEKDAY,
        1,
        2,
    )
    default = PamConfiguration.objects.get().schedule
    assert (default.type, default.cron, default.tz) == (schedules.CRON, "0 0 4 ? * 1", "Etc/UTC")


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        (
            "0 30 2 ? * 6#1",
            {"schedule_type": "MONTHLY_BY_WEEKDAY", "schedule_weekday": 4, "schedule_week": 1},
        ),
        (
            "0 30 2 ? * FRIL",
            {"schedule_type": "MONTHLY_BY_WEEKDAY", "schedule_weekday": 4, "schedule_week": -1},
        ),
        ("0 30 2 L * ?", {"schedule_type": "MONTHLY_BY_DAY", "schedule_day": 31}),
        ("0 30 2 ? * 1", {"schedule_type": "CRON", "schedule_cron": "0 30 2 ? * 1"}),
    ],
)
def test_keepers_quartz_monthly_forms_become_the_monthly_schedules_they_name(cron, expected):
    fields = keeper_schedules.schedule_fields({"type": "CRON", "cron": cron, "tz": "UTC"}, "x")
    assert {key: fields[key] for key in expected} == expected


def test_a_string_rotation_settings_naming_no_profile_is_rejected(db, tmp_path):
    data = sample()
    data["pam_data"]["users"][1]["rotation_settings"] = "nightly"

    assert "rotation profile 'nightly' is not in this file" in rejected(tmp_path, data)


def test_iam_user_rotation_is_rejected_with_a_reason(db, tmp_path):
    data = sample()
    data["pam_data"]["users"][1]["rotation_settings"]["rotation"] = "iam_user"

    assert "rotation iam_user (a cloud IAM user) is not supported" in rejected(tmp_path, data)


def test_a_commander_export_imports_each_uid_once_and_says_what_it_lacks(db):
    report = report_of("commander_export.json")

    users = {user.title: user for user in PamUser.objects.all()}
    assert set(users) == {"Keeper AD Admin", "Keeper svc"}
    assert users["Keeper AD Admin"].uid == "3iTOsBpxC7E8ZHf2PzFHkQ"
    assert users["Keeper svc"].resource is None and not users["Keeper svc"].rotation_enabled
    assert not PamDirectory.objects.exists()
    text = " ".join(report.warnings)
    assert "omits hosts, ports, DNs" in text and "each uid was imported once" in text
    assert ("directory", "Keeper AD") in {(item.kind, item.title) for item in report.skipped}
    assert PamConfiguration.objects.get().uid != "Ae8mWd5sRLOqvp2X6Yc1_w"  # that one was the directory's


def test_a_given_uid_is_kept_and_exported_and_a_malformed_or_taken_one_is_not(db, tmp_path):
    data = sample()
    data["pam_data"]["users"][1]["uid"] = "3iTOsBpxC7E8ZHf2PzFHkQ"
    run_import(write(tmp_path, data))
    user = PamUser.objects.get(title=data["pam_data"]["users"][1]["title"])
    assert user.uid == "3iTOsBpxC7E8ZHf2PzFHkQ"
    out = io.StringIO()
    call_command("pam_export", stdout=out)
    exported = json.loads(out.getvalue())
    everyone = exported["pam_data"]["users"] + [
        u for r in exported["pam_data"]["resources"] for u in r["users"]
    ]
    assert "3iTOsBpxC7E8ZHf2PzFHkQ" in {u["uid"] for u in everyone}
    assert exported["pam_configuration"]["uid"] == PamConfiguration.objects.get().uid

    taken = {"pam_configuration": {"title": "Other", "uid": "3iTOsBpxC7E8ZHf2PzFHkQ"}}
    report = report_of(taken)
    assert PamConfiguration.objects.get(title="Other").uid != "3iTOsBpxC7E8ZHf2PzFHkQ"
    assert "is used by another record" in " ".join(report.warnings)
    with pytest.raises(import_report.ImportRejected) as info:
        report_of({"pam_configuration": {"title": "Bad uid", "uid": "not-a-uid"}})
    assert "is not a Keeper record UID" in str(info.value.report.rejected[0])


def test_export_writes_what_keepers_importer_reads(db, tmp_path):
    run_import(str(SAMPLE))
    call_command("pam_export", "-o", str(tmp_path), stderr=io.StringIO())
    (path,) = tmp_path.glob("*.json")
    document = json.loads(path.read_text())

    assert document["project"] == "Sample Project Configuration"
    for resource in document["pam_data"]["resources"]:
        connection = resource["pam_settings"]["connection"]
        assert connection["protocol"] in ("rdp", "ssh") and connection["administrative_credentials"]
    schedules_seen = [document["pam_configuration"]["default_rotation_schedule"]] + [
        user["rotation_settings"]["schedule"]
        for resource in document["pam_data"]["resources"]
        for user in resource["users"]
        if "schedule" in user["rotation_settings"]
    ]
    for schedule in schedules_seen:
        assert schedule["type"] in ("ON_DEMAND", "CRON")
        if schedule["type"] == "CRON":
            assert len(schedule["cron"].split()) == 6 and "?" in schedule["cron"] and schedule["tz"]


def test_export_writes_one_file_per_configuration_into_a_directory(db, tmp_path):
    run_import(str(SAMPLE))
    report_of("keeper_domain.json")
    with pytest.raises(CommandError, match="2 configurations: give a directory"):
        call_command("pam_export", "-o", str(tmp_path / "one.json"), stderr=io.StringIO())

    call_command("pam_export", "-o", str(tmp_path), stderr=io.StringIO())
    files = sorted(path.name for path in tmp_path.glob("*.json"))
    assert files == ["corp-configuration.json", "sample-project-configuration.json"]
    corp = json.loads((tmp_path / "corp-configuration.json").read_text())
    assert corp["pam_configuration"]["environment"] == "domain"
    assert corp["pam_configuration"]["dom_hostname"] == "dc1.corp.example.test"
    assert corp["pam_configuration"]["dom_administrative_credential"] == "Domain Admin"


def test_a_domain_configuration_round_trips_through_export(db, tmp_path):
    report_of("keeper_domain.json")
    before = snapshot()
    call_command("pam_export", "--include-secrets", "-o", str(tmp_path), stderr=io.StringIO())
    PamDirectory.objects.update(administrative_credential=None)
    PamUser.objects.all().delete()
    PamDirectory.objects.all().delete()
    PamConfiguration.objects.all().delete()

    run_import(str(tmp_path / "corp-configuration.json"))

    assert snapshot() == before


@pytest.mark.parametrize(
    "record",
    [
        {"schedule_type": schedules.DAILY, "schedule_time": dt.time(4, 15), "schedule_interval": 3},
        {"schedule_type": schedules.WEEKLY, "schedule_time": dt.time(2, 0), "schedule_weekday": 6},
        {"schedule_type": schedules.MONTHLY_BY_DAY, "schedule_time": dt.time(3, 0), "schedule_day": 31},
        {
            "schedule_type": schedules.MONTHLY_BY_WEEKDAY,
            "schedule_time": dt.time(23, 30),
            "schedule_weekday": 4,
            "schedule_week": -1,
        },
        {"schedule_type": schedules.CRON, "schedule_cron": "30 18 * * 1-5"},
        {"schedule_type": schedules.CRON, "schedule_cron": "0 2 1 * 0"},
    ],
)
def test_every_schedule_is_exported_as_quartz_and_read_back_identically(record):
    base = {
        "schedule_time": None,
        "schedule_interval": 1,
        "schedule_weekday": None,
        "schedule_day": None,
        "schedule_week": None,
        "schedule_cron": "",
        "schedule_tz": "Europe/Berlin",
    }
    user = PamUser(**{**base, **record})
    exported = keeper_schedules.schedule_json(user)
    assert exported["type"] == "CRON" and exported["tz"] == "Europe/Berlin"
    back = keeper_schedules.schedule_fields(json.loads(json.dumps(exported)), "x")
    for name, value in record.items():
        assert back[name] == value, name


# -- Hostile files, and a preview that takes no write lock (issue 16) ----------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply; at most 64 levels"),
        ('{"pam_configuration": {"title": "x", "port_mapping": ' + "1" * 5_000 + "}}", "5000 digits"),
        (
            '{"pam_configuration": {"title": "x"}, "pam_data": {"rotation_profiles": {"X": null}}}',
            "X: a rotation",
        ),
    ],
)
def test_a_hostile_file_is_a_clear_command_error(db, tmp_path, content, message):
    assert message in rejected(tmp_path, content)


def test_a_file_past_the_size_limit_is_refused_by_the_command(db, tmp_path):
    path = tmp_path / "big.json"
    path.write_text(" " * (keeper.MAX_BYTES + 1))
    with pytest.raises(CommandError, match="the limit is 5 MB"):
        run_import(str(path))


@pytest.mark.django_db(transaction=True)
def test_a_dry_run_reads_while_another_process_holds_the_write_lock(tmp_path):
    from django.db import connection

    blocker = sqlite3.connect(connection.settings_dict["NAME"], timeout=0.1)
    blocker.execute("BEGIN IMMEDIATE")  # what a busy dispatcher's write transaction holds
    try:
        started = time.monotonic()
        out = run_import(str(SAMPLE), "--dry-run")
        assert "Would create: 10" in out and time.monotonic() - started < 5
    finally:
        blocker.rollback()
        blocker.close()
    assert nothing_written()


PROPERTY = settings(
    max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.mark.django_db
@PROPERTY
@given(document=test_import_view.DOCUMENTS, dry_run=st.booleans())
def test_arbitrary_json_never_gives_the_command_a_traceback(tmp_path, document, dry_run):
    path = tmp_path / "fuzz.json"
    path.write_text(document)
    try:
        call_command(
            "pam_import",
            str(path),
            *(["--dry-run"] if dry_run else []),
            stdout=io.StringIO(),
            stderr=io.StringIO(),
        )
    except CommandError:
        pass


def test_a_user_without_a_dn_is_looked_up_on_a_stored_directory_and_refused_when_it_cannot_be(db):
    directory = make_directory(title="Stored LDAP")
    document = {
        "pam_configuration": {"title": directory.configuration.title},
        "pam_data": {
            "users": [
                {
                    "title": "no-dn",
                    "login": "no-dn",
                    "rotation_settings": {"resource": "Stored LDAP", "enabled": "on"},
                }
            ]
        },
    }
    with pytest.raises(import_report.ImportRejected) as info:
        report_of(document)
    (item,) = info.value.report.rejected
    assert item.title == "no-dn" and "could not be looked up on Stored LDAP" in item.reason
    assert not PamUser.objects.exists()


def test_a_domain_configuration_without_its_controller_still_round_trips(db, tmp_path):
    make_configuration(title="Bare domain", environment="domain")
    call_command("pam_export", "-o", str(tmp_path / "bare.json"), stderr=io.StringIO())
    PamConfiguration.objects.all().delete()

    report = report_of(json.loads((tmp_path / "bare.json").read_text()))

    assert PamConfiguration.objects.get().environment == "domain" and not PamDirectory.objects.exists()
    assert "imported without its Domain Controller" in " ".join(report.warnings)
