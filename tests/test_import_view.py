"""Import a Keeper project in the browser: upload, preview the dry run, confirm or cancel."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from records import imports, keeper
from records.models import PamConfiguration, PamDirectory, PamUser
from rotation.models import AuditEvent
from tests.conftest import database_text, make_configuration

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


@pytest.fixture
def signed_in(client, alice):
    client.force_login(alice)
    return client


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
    assert imports.SESSION_KEY not in signed_in.session


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
    monkeypatch.setattr(imports, "SESSION_LIMIT", 0)
    upload(signed_in)
    files = list((Path(settings.DATA_DIR) / "imports").glob("*.enc"))
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert not [password for password in PASSWORDS if password in files[0].read_text()]
    assert "document" not in signed_in.session[imports.SESSION_KEY]
    assert signed_in.get(reverse("records:import-preview")).context["report"].created
    signed_in.post(reverse("records:import-confirm"))
    assert not files[0].exists()
    assert counts() == (1, 2, 7)


def test_cancel_discards_the_upload(signed_in, monkeypatch):
    monkeypatch.setattr(imports, "SESSION_LIMIT", 0)
    upload(signed_in)
    (waiting,) = (Path(settings.DATA_DIR) / "imports").glob("*.enc")
    response = signed_in.post(reverse("records:import-cancel"), follow=True)
    assert "Import cancelled; nothing was written." in response.content.decode()
    assert not waiting.exists()
    assert imports.SESSION_KEY not in signed_in.session
    assert signed_in.get(reverse("records:import-preview")).url == reverse("records:import")
    assert counts() == (0, 0, 0)


def test_confirm_and_cancel_need_a_post(signed_in):
    upload(signed_in)
    assert signed_in.get(reverse("records:import-confirm")).status_code == 405
    assert signed_in.get(reverse("records:import-cancel")).status_code == 405
    assert counts() == (0, 0, 0)
