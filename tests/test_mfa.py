"""The second factor: enrolment, verification at sign-in, recovery codes, resets, the people page,
and PAMROTATE_REQUIRE_MFA keeping Operators without a verified session away from reveal and rotate."""

from __future__ import annotations

import re
import time

import pytest
import time_machine
from django.test import Client, RequestFactory, override_settings
from django.urls import reverse
from django_otp.oath import TOTP
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from accounts import mfa
from accounts.models import RecoveryCode, RecoveryCodeDevice, TOTPDevice, hash_recovery_code
from audit.models import AuditEvent
from rotation.models import RotationAttempt
from tests.conftest import PERSONA_PASSWORD, database_text, examples, make_user

require_mfa = override_settings(REQUIRE_MFA=True)


def current_code(device: TOTPDevice, steps_ahead: int = 0) -> str:
    """Return the device's code for now (or a later time step), as an authenticator app shows it."""
    totp = TOTP(device.bin_key, device.step, 0, device.digits, device.drift)
    totp.time = totp.time + steps_ahead * device.step
    return f"{totp.token():06d}"


def sign_in(client, user, password: str = PERSONA_PASSWORD):
    return client.post(
        reverse("login"), {"username": user.username, "password": password}, REMOTE_ADDR="192.0.2.20"
    )


def enrol(client, user) -> tuple[TOTPDevice, list[str]]:
    """Enrol an authenticator for the signed-in user through the pages; return the device and codes."""
    page = client.get(reverse("accounts:mfa-enrol"))
    assert page.status_code == 200
    secret = re.search(r'data-secret="([A-Z2-7]+)"', page.content.decode()).group(1)
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    assert device.secret_base32 == secret
    response = client.post(reverse("accounts:mfa-confirm"), {"code": current_code(device)})
    assert response.status_code == 200, response.content
    codes = re.findall(r"\b[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}\b", response.content.decode())
    assert len(codes) == 10
    device.refresh_from_db()
    return device, codes


@pytest.fixture
def enrolled_bob(client, bob):
    client.force_login(bob)
    device, codes = enrol(client, bob)
    client.post(reverse("logout"))
    return device, codes


def test_enrolment_shows_a_qr_svg_and_the_secret_and_stores_the_seed_encrypted(client, bob):
    client.force_login(bob)
    page = client.get(reverse("accounts:mfa-enrol"))
    html = page.content.decode()
    assert "<svg" in html and 'class="qr-code"' in html
    assert " style=" not in html and "<style" not in html and "<script>" not in html
    device = TOTPDevice.objects.get(user=bob)
    assert device.secret_base32 in html and not device.confirmed
    stored = database_text()
    assert device.secret_base32 not in stored and device.bin_key.hex() not in stored
    assert (
        "script-src 'self'" in page["Content-Security-Policy"]
        and "unsafe-inline" not in page["Content-Security-Policy"]
    )


def test_a_wrong_enrolment_code_is_refused_and_audited(client, bob):
    client.force_login(bob)
    client.get(reverse("accounts:mfa-enrol"))
    device = TOTPDevice.objects.get(user=bob)
    wrong = "000000" if current_code(device) != "000000" else "111111"
    response = client.post(reverse("accounts:mfa-confirm"), {"code": wrong})
    assert response.status_code == 400 and b"not right" in response.content
    assert not TOTPDevice.objects.get(pk=device.pk).confirmed
    assert AuditEvent.objects.filter(event=AuditEvent.MFA_FAILED, actor_name="bob").exists()


def test_recovery_codes_are_shown_once_and_stored_only_as_hashes(client, bob):
    client.force_login(bob)
    device, codes = enrol(client, bob)
    stored = set(RecoveryCode.objects.values_list("code_hash", flat=True))
    assert stored == {hash_recovery_code(code) for code in codes}
    text = database_text()
    assert not any(code in text or code.replace("-", "") in text for code in codes)
    assert AuditEvent.objects.filter(event=AuditEvent.MFA_ENROLLED, actor_name="bob").exists()
    # Shown once: the account page only counts them.
    page = client.get(reverse("accounts:security")).content.decode()
    assert "10 recovery codes left" in page and not any(code in page for code in codes)


def test_an_enrolled_person_must_give_a_code_after_the_password(client, bob, enrolled_bob):
    device, _ = enrolled_bob
    assert sign_in(client, bob).status_code == 302
    response = client.get(reverse("records:dashboard"))
    assert response.status_code == 302 and response.url.startswith(reverse("accounts:mfa-verify"))
    before = client.session.session_key
    response = client.post(reverse("accounts:mfa-verify"), {"code": current_code(device, steps_ahead=1)})
    assert response.status_code == 302
    assert client.session.session_key != before  # a new session key at verification
    assert client.get(reverse("records:dashboard")).status_code == 200


def test_a_totp_code_is_accepted_only_once(client, bob, enrolled_bob):
    device, _ = enrolled_bob
    code = current_code(device, steps_ahead=1)
    sign_in(client, bob)
    assert client.post(reverse("accounts:mfa-verify"), {"code": code}).status_code == 302
    client.post(reverse("logout"))
    sign_in(client, bob)
    assert client.post(reverse("accounts:mfa-verify"), {"code": code}).status_code == 400
    assert AuditEvent.objects.filter(event=AuditEvent.MFA_FAILED, actor_name="bob").exists()


def test_a_recovery_code_works_once(client, bob, enrolled_bob):
    _, codes = enrolled_bob
    sign_in(client, bob)
    assert client.post(reverse("accounts:mfa-verify"), {"code": codes[3].upper()}).status_code == 302
    assert client.get(reverse("records:dashboard")).status_code == 200
    event = AuditEvent.objects.get(event=AuditEvent.RECOVERY_CODE_USED)
    assert (
        event.actor_name == "bob"
        and "9 recovery codes left" in event.message
        and codes[3] not in event.message
    )
    client.post(reverse("logout"))
    sign_in(client, bob)
    assert client.post(reverse("accounts:mfa-verify"), {"code": codes[3]}).status_code == 400
    assert client.get(reverse("records:dashboard")).status_code == 302


def test_wrong_codes_are_throttled_so_codes_cannot_be_guessed_quickly(client, bob, enrolled_bob):
    device, _ = enrolled_bob
    sign_in(client, bob)
    with time_machine.travel(time.time(), tick=False) as clock:
        wrong = "000000" if current_code(device, 1) != "000000" else "111111"
        assert client.post(reverse("accounts:mfa-verify"), {"code": wrong}).status_code == 400
        # Right away even the right code is refused: django-otp doubles the wait after each failure.
        assert (
            client.post(reverse("accounts:mfa-verify"), {"code": current_code(device, 1)}).status_code == 400
        )
        device.refresh_from_db()
        assert device.throttling_failure_count == 1 and not device.verify_is_allowed()[0]
        clock.shift(2)
        assert (
            client.post(reverse("accounts:mfa-verify"), {"code": current_code(device, 1)}).status_code == 302
        )


def test_re_enrolment_replaces_the_device_and_the_recovery_codes(client, bob):
    client.force_login(bob)
    old, old_codes = enrol(client, bob)
    new, new_codes = enrol(client, bob)
    assert list(TOTPDevice.objects.filter(user=bob).values_list("pk", flat=True)) == [new.pk]
    assert RecoveryCodeDevice.objects.filter(user=bob).count() == 1
    assert not set(old_codes) & set(new_codes)
    assert not RecoveryCodeDevice.objects.get(user=bob).verify_token(old_codes[0])


def test_a_session_that_has_not_used_the_enrolled_device_cannot_replace_it(client, bob, enrolled_bob):
    device, _ = enrolled_bob
    stale = Client()
    stale.force_login(bob)  # e.g. a session from before the enrolment
    assert stale.get(reverse("accounts:mfa-enrol")).url == reverse("accounts:mfa-verify")
    assert stale.post(reverse("accounts:mfa-confirm"), {"code": "123456"}).url == reverse(
        "accounts:mfa-verify"
    )
    assert list(TOTPDevice.objects.filter(user=bob).values_list("pk", flat=True)) == [device.pk]


# -- PAMROTATE_REQUIRE_MFA ----------------------------------------------------------------------


@require_mfa
def test_an_operator_without_mfa_is_sent_to_enrolment_before_anything_else(client, bob):
    assert sign_in(client, bob).status_code == 302
    for name in ("records:dashboard", "records:user-list", "rotation:audit-log", "accounts:people"):
        response = client.get(reverse(name))
        assert response.status_code == 302 and response.url == reverse("accounts:mfa-enrol"), name
    assert client.get(reverse("accounts:mfa-enrol")).status_code == 200


@require_mfa
def test_an_operator_without_mfa_cannot_reveal_or_rotate_by_direct_post(client, bob):
    pam_user = make_user(password="Stored-Secret-1")
    client.force_login(bob)
    for name in ("rotation:rotate-now", "rotation:reveal-password"):
        response = client.post(reverse(name, args=[pam_user.pk]))
        assert response.status_code == 302 and response.url == reverse("accounts:mfa-enrol")
    response = client.post(reverse("rotation:bulk-rotate"), {"users": [pam_user.pk]})
    assert response.status_code == 302 and response.url == reverse("accounts:mfa-enrol")
    assert not RotationAttempt.objects.exists()
    assert not AuditEvent.objects.filter(event=AuditEvent.PASSWORD_REVEALED).exists()


@require_mfa
def test_the_guard_itself_refuses_an_unverified_session_even_without_the_middleware(bob):
    request = RequestFactory().post("/")
    request.user = bob
    request.user.is_verified = lambda: False
    request.session = {}
    request._messages = type("M", (), {"add": lambda *a, **k: None})()
    response = mfa.require_verified(lambda request: "ran")(request)
    assert response != "ran" and response.url == reverse("accounts:mfa-enrol")
    assert not mfa.session_is_verified(request)
    request.user.is_verified = lambda: True
    assert mfa.session_is_verified(request)
    assert mfa.require_verified(lambda request: "ran")(request) == "ran"


def test_with_mfa_not_required_every_signed_in_session_counts_as_verified(bob):
    request = RequestFactory().get("/")
    request.user = bob
    assert mfa.session_is_verified(request)


@require_mfa
def test_an_administrator_without_mfa_cannot_import(client, alice):
    client.force_login(alice)
    response = client.post(reverse("records:import-confirm"))
    assert response.status_code == 302 and response.url == reverse("accounts:mfa-enrol")


@require_mfa
def test_a_viewer_is_not_forced_to_enrol(client, carol):
    sign_in(client, carol)
    assert client.get(reverse("records:dashboard")).status_code == 200


@require_mfa
def test_after_enrolment_an_operator_reaches_reveal(client, bob):
    pam_user = make_user(password="Stored-Secret-1")
    sign_in(client, bob)
    enrol(client, bob)
    response = client.post(reverse("rotation:reveal-password", args=[pam_user.pk]))
    assert response.status_code == 200
    assert AuditEvent.objects.filter(event=AuditEvent.PASSWORD_REVEALED, actor_name="bob").exists()


# -- People and roles ----------------------------------------------------------------------------


def test_the_people_page_lists_role_mfa_last_sign_in_and_source_for_administrators_only(
    client, personas, enrolled_bob
):
    client.force_login(personas["carol"])
    assert client.get(reverse("accounts:people")).status_code == 403
    client.force_login(personas["alice"])
    html = client.get(reverse("accounts:people")).content.decode()
    bob_row = re.search(r'<tr id="person-bob">(.*?)</tr>', html, re.S).group(1)
    assert "Operators" in bob_row and "enrolled" in bob_row and "Local" in bob_row
    carol_row = re.search(r'<tr id="person-carol">(.*?)</tr>', html, re.S).group(1)
    assert "Viewers" in carol_row and "none" in carol_row and "never" not in bob_row


def test_an_administrator_changes_a_local_role_and_deactivates_with_an_audit_event(client, alice, carol):
    carols = Client()
    carols.force_login(carol)
    client.force_login(alice)
    url = reverse("accounts:person-change", args=[carol.pk])
    client.post(url, {f"p{carol.pk}-role": "Operators", f"p{carol.pk}-is_active": "on"})
    assert [g.name for g in carol.groups.all()] == ["Operators"]
    client.post(url, {f"p{carol.pk}-role": "Operators"})
    carol.refresh_from_db()
    assert not carol.is_active
    assert carols.get(reverse("records:dashboard")).status_code == 302  # signed out everywhere
    messages = list(
        AuditEvent.objects.filter(event=AuditEvent.ROLE_CHANGED).values_list("message", flat=True)
    )
    assert any("carol: role set to Operators" in m for m in messages) and any(
        "deactivated" in m for m in messages
    )
    assert client.post(url, {f"p{carol.pk}-role": "bogus"}).status_code == 302  # no 500


def test_an_administrator_cannot_demote_or_deactivate_themselves(client, alice):
    client.force_login(alice)
    client.post(reverse("accounts:person-change", args=[alice.pk]), {f"p{alice.pk}-role": "Viewers"})
    alice.refresh_from_db()
    assert alice.is_active and [g.name for g in alice.groups.all()] == ["Administrators"]


def test_an_administrator_resets_another_persons_device_and_it_is_audited(client, alice, bob, enrolled_bob):
    bobs = Client()
    bobs.force_login(bob)
    client.force_login(alice)
    client.post(reverse("accounts:person-reset-mfa", args=[bob.pk]))
    assert not TOTPDevice.objects.filter(user=bob).exists() and not RecoveryCode.objects.exists()
    event = AuditEvent.objects.get(event=AuditEvent.MFA_DEVICE_RESET)
    assert event.actor_name == "alice" and "bob" in event.message
    assert bobs.get(reverse("records:dashboard")).status_code == 302
    client.force_login(bob)
    client.post(reverse("accounts:mfa-verify"), {"code": "123456"})
    assert client.get(reverse("records:dashboard")).status_code == 200  # MFA not required here


def test_only_administrators_may_change_people(client, bob, carol):
    client.force_login(bob)
    assert client.post(reverse("accounts:person-change", args=[carol.pk]), {}).status_code == 403
    assert client.post(reverse("accounts:person-reset-mfa", args=[carol.pk])).status_code == 403


def test_everyone_changes_their_own_local_password(client, carol):
    client.force_login(carol)
    response = client.post(
        reverse("accounts:password-change"),
        {
            "old_password": PERSONA_PASSWORD,
            "new_password1": "a new long passphrase 77",
            "new_password2": "a new long passphrase 77",
        },
    )
    assert response.status_code == 302
    carol.refresh_from_db()
    assert carol.check_password("a new long passphrase 77")


def test_ensure_admin_points_to_the_people_page(db):
    from io import StringIO

    from django.core.management import call_command

    from tests.conftest import ensure_roles

    ensure_roles()
    out = StringIO()
    call_command("ensure_admin", stdout=out)
    assert "/accounts/people/" in out.getvalue()


# -- No input gives a server error ---------------------------------------------------------------

ANY_TEXT = st.text(max_size=300)
FUZZ = hypothesis_settings(
    max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(username=ANY_TEXT, password=ANY_TEXT)
def test_arbitrary_sign_in_input_never_gives_a_server_error(client, carol, username, password):
    response = client.post(reverse("login"), {"username": username, "password": password})
    assert response.status_code in (200, 302)


@FUZZ
@given(code=ANY_TEXT)
def test_arbitrary_codes_never_give_a_server_error(client, bob, enrolled_bob, code):
    client.force_login(bob)
    assert client.post(reverse("accounts:mfa-verify"), {"code": code}).status_code in (302, 400)
    assert client.post(reverse("accounts:mfa-confirm"), {"code": code}).status_code in (200, 302, 400)


@FUZZ
@given(role=ANY_TEXT, active=ANY_TEXT)
def test_arbitrary_people_changes_never_give_a_server_error(client, alice, carol, role, active):
    client.force_login(alice)
    response = client.post(reverse("accounts:person-change", args=[carol.pk]),
                           {f"p{carol.pk}-role": role, f"p{carol.pk}-is_active": active})  # fmt: skip
    assert response.status_code == 302


# -- The API is no way around the second factor (issue 21, defect 1) ----------------------------


def _password_only_session(client, person):
    """Sign in with the password alone, as a thief with a stolen password (no TOTP code) would."""
    assert sign_in(client, person).status_code == 302
    response = client.get(reverse("records:dashboard"))
    assert response.status_code == 302 and response.url == reverse("accounts:mfa-verify")


@pytest.mark.parametrize("required", [True, False])
def test_a_session_that_has_not_passed_its_second_factor_cannot_repoint_a_directory_by_api(
    client, alice, required
):
    from tests.conftest import make_directory

    directory = make_directory(title="Corp AD", hostname="dc1.corp.test")
    with override_settings(REQUIRE_MFA=required):
        client.force_login(alice)
        enrol(client, alice)
        client.post(reverse("logout"))
        _password_only_session(client, alice)
        response = client.patch(
            f"/api/v1/directories/{directory.uid}/",
            data={"hostname": "attacker.example", "verify_certificate": False},
            content_type="application/json",
        )
        assert response.status_code == 403, response.content
        assert "second factor" in response.json()["detail"]
        configuration = directory.configuration
        response = client.patch(
            f"/api/v1/configurations/{configuration.uid}/",
            data={"heartbeat_hours": 1},
            content_type="application/json",
        )
        assert response.status_code == 403
        for url in ("/api/v1/users/", "/api/v1/directories/", "/api/schema/", "/v1/ldap/static-cred/x"):
            assert client.get(url).status_code == 403, url
    directory.refresh_from_db()
    assert directory.hostname == "dc1.corp.test" and directory.verify_certificate


@require_mfa
def test_a_session_that_must_enrol_first_gets_nothing_from_the_api(client, alice):
    client.force_login(alice)
    assert client.get("/api/v1/directories/").status_code == 403


def test_a_verified_session_still_uses_the_api(client, alice):
    client.force_login(alice)
    device, _codes = enrol(client, alice)
    client.post(reverse("logout"))
    _password_only_session(client, alice)
    response = client.post(reverse("accounts:mfa-verify"), {"code": current_code(device, steps_ahead=1)})
    assert response.status_code == 302
    assert client.get("/api/v1/directories/").status_code == 200
