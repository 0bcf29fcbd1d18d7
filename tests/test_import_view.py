"""Import a Keeper project in the browser: upload, preview the dry run, confirm or cancel."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.sessions.models import Session
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.models import AuditEvent
from records import import_stash, imports, keeper
from records.models import PamConfiguration, PamDirectory, PamUser
from tests.conftest import database_text, examples, make_configuration

SAMPLE = Path(__file__).parent / "data" / "keeper_project.json"
PASSWORDS = imports.passwords_in(keeper.parse(SAMPLE.read_bytes()))


def upload(client, content: bytes | str | None = None, name: str = "project.json"):
    content = SAMPLE.read_bytes() if content is None else content
    content = content.encode() if isinstance(content, str) else content
    return client.post(
        reverse("records:import"), {"file": SimpleUploadedFile(name, content, "application/json")}
    )


def counts() -> tuple[int, int, int]:
    return PamConfiguration.objects.count(), PamDirectory.objects.count(), PamUser.objects.count()


def sessions_text() -> str:
    """Return every stored session decoded, so a password kept in clear would show."""
    return "\n".join(json.dumps(session.get_decoded()) for session in Session.objects.all())


def test_only_administrators_may_import(client, personas):
    for name in ("bob", "carol", "dave"):
        client.force_login(personas[name])
        assert client.get(reverse("records:import")).status_code == 403
        assert upload(client).status_code == 403
        assert client.get(reverse("records:import-preview")).status_code == 403
        assert client.post(reverse("records:import-confirm")).status_code == 403
        assert client.post(reverse("records:import-cancel")).status_code == 403
    assert counts() == (0, 0, 0)
    client.force_login(personas["alice"])
    assert client.get(reverse("records:import")).status_code == 200


def test_the_configuration_list_links_to_import_for_administrators_only(client, alice, bob):
    client.force_login(alice)
    assert reverse("records:import") in client.get(reverse("records:configuration-list")).content.decode()
    client.force_login(bob)
    assert reverse("records:import") not in client.get(reverse("records:configuration-list")).content.decode()


def test_an_upload_previews_what_would_be_created_and_skipped_without_writing(signed_in):
    make_configuration(title="Sample Project Configuration")
    response = upload(signed_in)
    assert response.status_code == 302 and response.url == reverse("records:import-preview")
    preview = signed_in.get(response.url)
    report = preview.context["report"]
    assert [item.title for item in report.skipped] == ["Sample Project Configuration"]
    created = {(item.kind, item.title) for item in report.created}
    assert ("directory", "Sample AD") in created and ("user", "Sample svc-backup") in created
    assert report.warnings and report.ok
    page = preview.content.decode()
    assert "Will be created" in page and "Sample svc-backup" in page
    assert "a configuration with this title exists" in page
    assert "certificate verification is turned OFF" in page
    assert 'id="import-confirm"' in page
    assert counts() == (1, 0, 0)
    assert not AuditEvent.objects.filter(event=AuditEvent.RECORD_CREATED).exists()


def test_confirm_writes_the_records_and_audits_them_as_the_web_user(signed_in, alice):
    upload(signed_in)
    response = signed_in.post(reverse("records:import-confirm"), REMOTE_ADDR="192.0.2.7", follow=True)
    assert response.redirect_chain[-1][0] == reverse("records:configuration-list")
    assert "Imported project.json: 10 records created, 0 skipped." in response.content.decode()
    assert counts() == (1, 2, 7)
    assert PamUser.objects.get(title="Sample svc-backup").get_password() == "Backup-Start-Pass-1!"
    events = AuditEvent.objects.filter(event=AuditEvent.RECORD_CREATED)
    assert events.count() == 10
    assert {(e.actor_id, e.actor_name, e.remote_address) for e in events} == {
        (alice.pk, "alice", "192.0.2.7")
    }
    # The waiting upload is gone: confirming again imports nothing.
    again = signed_in.post(reverse("records:import-confirm"), follow=True)
    assert "There is no upload waiting" in again.content.decode()
    assert counts() == (1, 2, 7)


def test_a_rejected_file_lists_the_reasons_and_offers_no_confirm(signed_in):
    data = json.loads(SAMPLE.read_text())
    data["pam_data"]["resources"][1]["directory_type"] = "novell"
    upload(signed_in, json.dumps(data))
    page = signed_in.get(reverse("records:import-preview")).content.decode()
    assert "This file would be rejected" in page
    assert "Would have created" in page and "Will be created" not in page
    assert "unknown directory_type &#x27;novell&#x27;" in page
    assert 'id="import-confirm"' not in page
    response = signed_in.post(reverse("records:import-confirm"), follow=True)
    assert "nothing was written" in response.content.decode()
    assert counts() == (0, 0, 0)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"pam_configuration": {"title": "x"},\n  "pam_data": {,}}', "invalid JSON at line 2, column 16"),
        (b'{"title": "caf\xe9"}', "the file is not UTF-8 text (byte 14)"),
        ("[1, 2]", "project 1: expected a JSON object"),
        ("", "The submitted file is empty."),
    ],
)
def test_a_file_that_is_not_a_project_is_refused_clearly(signed_in, content, message):
    response = upload(signed_in, content)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert import_stash.SESSION_KEY not in signed_in.session


def test_a_file_over_five_megabytes_is_refused(signed_in):
    response = upload(signed_in, b" " * (5 * 1024 * 1024 + 1))
    assert "the limit is 5 MB" in response.content.decode()


def test_passwords_never_reach_the_preview_or_the_session_table_in_clear(signed_in):
    upload(signed_in)
    page = signed_in.get(reverse("records:import-preview")).content.decode()
    stored = database_text() + sessions_text()
    for password in PASSWORDS:
        assert password not in page
        assert password not in stored
    signed_in.post(reverse("records:import-confirm"))
    stored = database_text() + sessions_text()
    assert not [password for password in PASSWORDS if password in stored]


def test_a_password_a_reason_would_echo_is_hidden(signed_in):
    data = json.loads(SAMPLE.read_text())
    data["pam_data"]["users"][1]["managed"] = "Deploy-Start-Pass-1!"  # a password pasted in the wrong key
    upload(signed_in, json.dumps(data))
    page = signed_in.get(reverse("records:import-preview")).content.decode()
    assert "Deploy-Start-Pass-1!" not in page
    assert "(password hidden)" in page


def test_a_large_upload_waits_encrypted_in_a_private_file_that_confirm_deletes(signed_in, monkeypatch):
    monkeypatch.setattr(import_stash, "SESSION_LIMIT", 0)
    upload(signed_in)
    files = list((Path(django_settings.DATA_DIR) / "imports").glob("*.enc"))
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert not [password for password in PASSWORDS if password in files[0].read_text()]
    assert "document" not in signed_in.session[import_stash.SESSION_KEY]
    assert signed_in.get(reverse("records:import-preview")).context["report"].created
    signed_in.post(reverse("records:import-confirm"))
    assert not files[0].exists()
    assert counts() == (1, 2, 7)


def test_cancel_discards_the_upload(signed_in, monkeypatch):
    monkeypatch.setattr(import_stash, "SESSION_LIMIT", 0)
    upload(signed_in)
    (waiting,) = (Path(django_settings.DATA_DIR) / "imports").glob("*.enc")
    response = signed_in.post(reverse("records:import-cancel"), follow=True)
    assert "Import cancelled; nothing was written." in response.content.decode()
    assert not waiting.exists()
    assert import_stash.SESSION_KEY not in signed_in.session
    assert signed_in.get(reverse("records:import-preview")).url == reverse("records:import")
    assert counts() == (0, 0, 0)


def test_confirm_and_cancel_need_a_post(signed_in):
    upload(signed_in)
    assert signed_in.get(reverse("records:import-confirm")).status_code == 405
    assert signed_in.get(reverse("records:import-cancel")).status_code == 405
    assert counts() == (0, 0, 0)


# -- Hostile files (issue 16) ---------------------------------------------------------------------

HOSTILE = [
    ("[" * 5_000 + "]" * 5_000, "nested too deeply"),
    ('{"a": ' * 100_000 + "1" + "}" * 100_000, "nested too deeply"),
    ('{"pam_configuration": {"title": "x", "rotation": ' + "9" * 5_000 + "}}", "at most 30 are accepted"),
    (
        '{"pam_configuration": {"title": "x"}, "pam_data": {"rotation_profiles": {"X": null}}}',
        "must be a JSON object",
    ),
    ('{"pam_configuration": {"title": "\\ud800"}}', "lone surrogate"),
    ('{"pam_configuration": {"title": "x", "network_id": NaN}}', "NaN is not a JSON number"),
]


@pytest.mark.parametrize(("content", "message"), HOSTILE)
def test_a_hostile_file_is_refused_with_a_clear_message(signed_in, content, message):
    response = upload(signed_in, content)
    if response.status_code == 302:  # it parses; the preview says why it is rejected
        response = signed_in.get(response.url)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert counts() == (0, 0, 0)


# Keys Keeper's files use, so generated documents reach deep into the importer.
KEYS = sorted(
    keeper.TOP_KEYS
    | keeper.CONFIGURATION_KEYS
    | keeper.DOMAIN_KEYS
    | keeper.DATA_KEYS
    | keeper.DIRECTORY_KEYS
    | keeper.USER_KEYS
    | keeper.ROTATION_KEYS
    | keeper.SCHEDULE_KEYS
    | {"connection"}
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(
        [
            "on",
            "off",
            "local",
            "domain",
            "pamDirectory",
            "pamUser",
            "login",
            "openldap",
            "active_directory",
            "general",
            "scripts_only",
            "iam_user",
            "CRON",
            "DAILY",
            "WEEKLY",
            "YEARLY",
            "MONTHLY_BY_WEEKDAY",
            "0 0 2 ? * 6#1",
            "0 0 31 2 *",
            "02:00",
            "SUNDAY",
            "LAST",
            "20,1,1,1,1",
            "ldap.example.test",
            "10.0.0.0/24",
            "3iTOsBpxC7E8ZHf2PzFHkQ",
        ]
    ),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
RECORD = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=8)
PROJECT = st.fixed_dictionaries(
    {},
    optional={
        "project": VALUES,
        "tool_version": st.sampled_from(["commander-export-1.0", "x"]),
        "pam_configuration": RECORD | VALUES,
        "pam_data": st.fixed_dictionaries(
            {},
            optional={
                "resources": st.lists(
                    st.fixed_dictionaries({"users": st.lists(RECORD, max_size=3)}) | RECORD, max_size=3
                ),
                "users": st.lists(RECORD, max_size=4),
                "rotation_profiles": st.dictionaries(st.text(max_size=6), RECORD | VALUES, max_size=2),
            },
        )
        | VALUES,
    },
)
DOCUMENTS = st.one_of(PROJECT, st.lists(PROJECT, max_size=2), VALUES).map(json.dumps)
PROPERTY = settings(
    max_examples=examples(80), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.mark.django_db
@PROPERTY
@given(document=DOCUMENTS)
def test_arbitrary_json_never_breaks_the_import_pages(signed_in, document):
    response = upload(signed_in, document)
    assert response.status_code in (200, 302), response.status_code
    if response.status_code == 302:
        assert signed_in.get(response.url).status_code == 200
        assert signed_in.post(reverse("records:import-confirm")).status_code == 302
