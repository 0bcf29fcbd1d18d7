"""Post-rotation scripts: Keeper's contract with real bash and python3 processes, real slapd and Samba."""

from __future__ import annotations

import base64
import io
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from audit.models import AuditEvent
from records import import_report, imports, keeper, keeper_export
from records.models import PamUser
from rotation.models import AttemptState, ScriptsState
from scripts import files, masking, queue
from scripts.models import PostRotationScript, RunState, ScriptRun
from tests.conftest import examples, make_configuration, make_user
from tests.test_rotation import STRONG, make_env, rotate

# A python3 script that writes what it received (payload decoded, environment, directory) to OUT.
RECORDER = """#!/usr/bin/env python3
import base64, json, os, sys
for line in sys.stdin:
    params = json.loads(base64.b64decode(line).decode())
    break
params["records"] = json.loads(base64.b64decode(params["records"]).decode())
params["env"] = dict(os.environ)
params["cwd"] = os.getcwd()
with open("{out}", "w") as handle:
    json.dump(params, handle)
"""


SCRIPT_USER = "pamrotate-test-script"


@pytest.fixture(scope="session", name="script_account")
def script_account_fixture():
    """The unprivileged user scripts run as (the suite runs as root: it creates it when missing)."""
    if os.geteuid() != 0:
        pytest.skip("switching to the script user needs root (or CAP_SETUID/CAP_SETGID/CAP_KILL)")
    try:
        return pwd.getpwnam(SCRIPT_USER)
    except KeyError:
        # Exit status 9 ("already exists"): another pytest-xdist worker created it a moment ago.
        made = subprocess.run(["useradd", "--system", "--no-create-home", SCRIPT_USER], check=False)  # noqa: S607
        assert made.returncode in (0, 9), f"useradd failed with {made.returncode}"
        return pwd.getpwnam(SCRIPT_USER)


@pytest.fixture(autouse=True, name="as_script_user")
def as_script_user_fixture(settings, script_account):
    """Scripts run as the script user, as in production."""
    settings.SCRIPT_USER = SCRIPT_USER
    return script_account


@pytest.fixture(name="scripts_dir")
def scripts_dir_fixture(tmp_path, settings):
    directory = tmp_path / "scripts"
    directory.mkdir(mode=0o700)
    settings.SCRIPTS_DIR = directory
    return directory


@pytest.fixture(name="out_dir")
def out_dir_fixture(script_account) -> Path:
    """A directory the script user may write to (pytest's tmp_path is root's alone)."""
    directory = Path(tempfile.mkdtemp(prefix="pamrotate-out-"))
    os.chown(directory, script_account.pw_uid, script_account.pw_gid)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def write_script(directory: Path, name: str, body: str, mode: int = 0o700) -> str:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    path.chmod(mode)
    return name


def recorder(directory: Path, out: Path, name: str = "record.py") -> str:
    return write_script(directory, name, RECORDER.format(out=out / f"{name}.json"))


def received(out: Path, name: str = "record.py") -> dict:
    return json.loads((out / f"{name}.json").read_text())


def attach(owner, name: str, command: str = "", order: int = 1, credentials=()) -> PostRotationScript:
    field = type(owner).__name__.removeprefix("Pam").lower()
    script = PostRotationScript(file=name, command=command, order=order, **{field: owner})
    script.full_clean()
    script.save()
    script.additional_credentials.set(credentials)
    return script


@pytest.fixture(params=["openldap", "ad"])
def env(request, db, unique_name):
    return make_env(request.getfixturevalue("slapd" if request.param == "openldap" else "samba"), unique_name)


# -- The payload ------------------------------------------------------------------------------


def test_a_python_script_decodes_keepers_payload(ldap_env, unique_name, scripts_dir, out_dir):
    user = ldap_env.account(unique_name("pay"))
    admin = ldap_env.directory.administrative_credential
    attach(user, recorder(scripts_dir, out_dir), credentials=[admin])

    attempt = rotate(user)

    assert attempt.state == AttemptState.SUCCEEDED, attempt.error_message
    assert attempt.scripts_state == ScriptsState.SUCCEEDED, attempt.scripts_message
    user.refresh_from_db()
    params = received(out_dir)
    configuration, directory = user.configuration, ldap_env.directory
    assert params["providerRecordUid"] == configuration.uid
    assert params["resourceRecordUid"] == directory.uid
    assert params["userRecordUid"] == user.uid
    assert params["user"] == user.login
    assert params["newPassword"] == user.get_password()
    assert params["oldPassword"] == STRONG
    records = params["records"]
    assert [r["uid"] for r in records] == [configuration.uid, directory.uid, admin.uid, user.uid]
    assert records[0]["title"] == configuration.title
    assert records[1]["hostName"] == directory.hostname and records[1]["port"] == str(directory.port)
    assert records[2]["login"] == admin.login and records[2]["password"] == admin.get_password()
    assert records[3] == {
        "uid": user.uid,
        "title": user.title,
        "type": "pamUser",
        "login": user.login,
        "password": user.get_password(),
        "distinguishedName": user.distinguished_name,
    }


def test_the_new_password_a_bash_script_receives_binds_and_the_old_one_is_the_previous(
    env, unique_name, scripts_dir, out_dir
):
    user = env.account(unique_name("bash"))
    body = (
        f'#!/bin/bash\nset -euo pipefail\nread -r line\necho "$line" | base64 -d > "{out_dir}/payload.json"\n'
    )
    attach(user, write_script(scripts_dir, "deliver.sh", body))

    assert rotate(user).state == AttemptState.SUCCEEDED
    first = json.loads((out_dir / "payload.json").read_text())
    assert env.server.can_bind(user.distinguished_name, first["newPassword"])
    assert first["oldPassword"] == STRONG

    assert rotate(user).state == AttemptState.SUCCEEDED
    second = json.loads((out_dir / "payload.json").read_text())
    assert second["oldPassword"] == first["newPassword"]
    assert env.server.can_bind(user.distinguished_name, second["newPassword"])


def test_scripts_run_user_then_directory_then_configuration_each_in_order(
    ldap_env, unique_name, scripts_dir, out_dir
):
    user = ldap_env.account(unique_name("order"))
    log = out_dir / "order.log"
    for name in ("u1", "u2", "d1", "c1", "c2"):
        write_script(scripts_dir, f"{name}.sh", f'#!/bin/bash\necho {name} >> "{log}"\n')
    attach(ldap_env.directory.configuration, "c2.sh", order=2)
    attach(ldap_env.directory.configuration, "c1.sh", order=1)
    attach(ldap_env.directory, "d1.sh")
    attach(user, "u2.sh", order=5)
    attach(user, "u1.sh", order=3)

    attempt = rotate(user)

    assert log.read_text().split() == ["u1", "u2", "d1", "c1", "c2"]
    runs = list(ScriptRun.objects.filter(attempt=attempt))
    assert [(r.record_type, r.file, r.state) for r in runs] == [
        ("user", "u1.sh", RunState.SUCCEEDED),
        ("user", "u2.sh", RunState.SUCCEEDED),
        ("directory", "d1.sh", RunState.SUCCEEDED),
        ("configuration", "c1.sh", RunState.SUCCEEDED),
        ("configuration", "c2.sh", RunState.SUCCEEDED),
    ]
    assert all(r.exit_code == 0 and r.duration is not None for r in runs)


def test_the_environment_holds_no_key_or_database_url(
    ldap_env, unique_name, scripts_dir, out_dir, monkeypatch, settings
):
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:dbsecret@db/x")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1/0")
    monkeypatch.setenv("PAMROTATE_FAKE_KEY", "keymaterial")
    user = ldap_env.account(unique_name("env"))
    # An absolute interpreter: a pyenv shim on PATH would add its own variables.
    attach(user, recorder(scripts_dir, out_dir), command="/usr/bin/python3")

    rotate(user)

    params = received(out_dir)
    assert set(params["env"]) <= {"PATH", "HOME", "LANG", "TMPDIR", "LC_CTYPE"}
    text = json.dumps(params["env"])
    key = os.environ["PAMROTATE_ENCRYPTION_KEY"]
    assert "dbsecret" not in text and "keymaterial" not in text and key not in text
    assert params["env"]["TMPDIR"] == params["cwd"]
    assert not Path(params["cwd"]).exists()  # its working directory is removed afterwards


def test_a_script_past_its_timeout_is_killed_with_its_children(
    ldap_env, unique_name, scripts_dir, out_dir, settings
):
    settings.SCRIPT_TIMEOUT = 2
    user = ldap_env.account(unique_name("slow"))
    body = f'#!/bin/bash\nsleep 300 &\necho $! > "{out_dir}/child"\nsleep 300\n'
    attach(user, write_script(scripts_dir, "slow.sh", body))

    started = time.monotonic()
    attempt = rotate(user)

    assert time.monotonic() - started < 30
    run = ScriptRun.objects.get(attempt=attempt)
    assert run.state == RunState.TIMED_OUT and run.exit_code is None
    assert attempt.state == AttemptState.SUCCEEDED
    assert attempt.scripts_message == "rotated; script slow.sh timed out"
    child = int((out_dir / "child").read_text())
    for _ in range(50):
        if not Path(f"/proc/{child}").exists() or " Z " in Path(f"/proc/{child}/stat").read_text():
            break
        time.sleep(0.1)
    else:
        pytest.fail("the script's child outlived the timeout")


def test_output_is_kept_with_every_password_masked_even_across_writes(ldap_env, unique_name, scripts_dir):
    user = ldap_env.account(unique_name("mask"))
    body = """#!/usr/bin/env python3
import base64, json, sys, time
line = sys.stdin.readline().strip()
params = json.loads(base64.b64decode(line))
new = params["newPassword"]
print("new", new, "old", params["oldPassword"], "line", line)
print(json.dumps(params))
sys.stdout.write(new[:7]); sys.stdout.flush(); time.sleep(0.3); sys.stdout.write(new[7:] + "\\n")
sys.stderr.write("x" * 70000 + new)
"""
    attach(user, write_script(scripts_dir, "chatty.py", body), command="python3")

    attempt = rotate(user)

    user.refresh_from_db()
    run = ScriptRun.objects.get(attempt=attempt)
    assert run.state == RunState.SUCCEEDED
    for password in (user.get_password(), STRONG):
        assert password not in run.stdout and password not in run.stderr
    assert run.stdout.count("********") >= 4
    assert "line ********" in run.stdout  # the payload line itself is masked too
    assert len(run.stderr.encode()) <= 64 * 1024 + 100 and run.stderr.endswith("[output cut at 64 KiB]")


def test_mask_hides_json_escaped_passwords():
    text = masking.mask(b'{"p": "a\\"b\\\\c"} and a"b\\c', ['a"b\\c'])
    assert text == '{"p": "********"} and ********'


# -- A failing script never rolls back ----------------------------------------------------------


def test_a_failing_script_keeps_the_new_password_and_says_so_everywhere(
    ldap_env, unique_name, scripts_dir, settings, django_capture_on_commit_callbacks
):
    settings.NOTIFY_EMAIL_TO = ["security@example.test"]
    user = ldap_env.account(unique_name("fail"))
    write_script(scripts_dir, "deploy.sh", "#!/bin/bash\necho cannot deploy >&2\nexit 3\n")
    attach(user, "deploy.sh")

    with django_capture_on_commit_callbacks(execute=True):
        attempt = rotate(user)

    assert attempt.state == AttemptState.SUCCEEDED
    assert attempt.scripts_state == ScriptsState.FAILED
    assert attempt.scripts_message == "rotated; script deploy.sh failed (exit 3)"
    user.refresh_from_db()
    assert ldap_env.server.can_bind(user.distinguished_name, user.get_password())
    assert user.get_password() != STRONG
    assert user.rotation_error == "rotated; script deploy.sh failed (exit 3)"
    run = ScriptRun.objects.get(attempt=attempt)
    assert (run.exit_code, run.state, run.stderr) == (3, RunState.FAILED, "cannot deploy\n")
    event = AuditEvent.objects.get(attempt_id=attempt.pk, event=AuditEvent.ROTATION_ON_DEMAND_FAIL)
    assert "deploy.sh failed (exit 3)" in event.message and event.outcome == "fail"
    assert len(mail.outbox) == 1 and "deploy.sh failed (exit 3)" in mail.outbox[0].body

    # The warning stays until the next clean rotation.
    write_script(scripts_dir, "deploy.sh", "#!/bin/bash\nexit 0\n")
    again = rotate(user)
    user.refresh_from_db()
    assert again.scripts_state == ScriptsState.SUCCEEDED and user.rotation_error == ""


def test_pam_action_rotate_wait_exits_non_zero_naming_the_script(ldap_env, unique_name, scripts_dir):
    user = ldap_env.account(unique_name("cli"))
    attach(user, write_script(scripts_dir, "deploy.sh", "#!/bin/bash\nexit 3\n"))
    err = io.StringIO()
    with pytest.raises(CommandError, match="did not succeed"):
        call_command("pam_action", "rotate", "--user", user.title, "--wait", stdout=io.StringIO(), stderr=err)
    assert "script deploy.sh failed (exit 3)" in err.getvalue()


# -- Which files may run --------------------------------------------------------------------------


@pytest.mark.django_db
def test_files_outside_the_directory_or_unsafe_are_refused_with_the_reason(scripts_dir, tmp_path):
    outside = tmp_path / "outside.sh"
    outside.write_text("#!/bin/bash\n")
    outside.chmod(0o700)
    (scripts_dir / "escape.sh").symlink_to(outside)
    write_script(scripts_dir, "open.sh", "#!/bin/bash\n", mode=0o777)
    write_script(scripts_dir, "plain.sh", "#!/bin/bash\n", mode=0o600)
    (scripts_dir / "folder").mkdir()
    cases = {
        "escape.sh": "outside the scripts directory",
        "../outside.sh": "outside the scripts directory",
        str(outside): "relative to the scripts directory",
        "open.sh": "world-writable",
        "missing.sh": "does not exist",
        "folder": "not a regular file",
        "plain.sh": "not executable",
    }
    user = make_user()
    for name, reason in cases.items():
        with pytest.raises(ValidationError, match=reason):
            attach(user, name)
    attach(user, "plain.sh", command="bash")  # a command runs a file that is not executable
    assert "escape.sh" not in files.available() and "open.sh" not in files.available()
    with pytest.raises(ValidationError, match="one program"):
        attach(user, "plain.sh", command="bash -c 'id'")


def test_a_file_swapped_for_an_escaping_symlink_is_refused_when_it_runs(
    ldap_env, unique_name, scripts_dir, out_dir, tmp_path
):
    user = ldap_env.account(unique_name("swap"))
    attach(user, write_script(scripts_dir, "deploy.sh", "#!/bin/bash\nexit 0\n"))
    marker = out_dir / "ran"
    outside = tmp_path / "evil.sh"
    outside.write_text(f'#!/bin/bash\ntouch "{marker}"\n')
    outside.chmod(0o700)
    (scripts_dir / "deploy.sh").unlink()
    (scripts_dir / "deploy.sh").symlink_to(outside)

    attempt = rotate(user)

    run = ScriptRun.objects.get(attempt=attempt)
    assert run.state == RunState.FAILED and "outside the scripts directory" in run.reason
    assert not marker.exists()
    assert attempt.state == AttemptState.SUCCEEDED and "deploy.sh failed" in attempt.scripts_message


# -- Pages ------------------------------------------------------------------------------------------


def test_administrators_attach_change_and_detach_scripts_as_audited_record_changes(
    client, alice, bob, scripts_dir
):
    write_script(scripts_dir, "deploy.sh", "#!/bin/bash\n")
    configuration = make_configuration()
    credential = make_user(configuration=configuration, title="Other admin")
    user = make_user(configuration=configuration)
    client.force_login(bob)
    assert client.get(reverse("scripts:attach", args=["user", user.pk])).status_code == 403
    client.force_login(alice)
    page = client.get(reverse("scripts:attach", args=["user", user.pk])).content.decode()
    assert "deploy.sh" in page

    response = client.post(
        reverse("scripts:attach", args=["user", user.pk]),
        {"file": "deploy.sh", "command": "", "order": "1", "additional_credentials": [credential.pk]},
    )
    assert response.status_code == 302
    script = PostRotationScript.objects.get(user=user)
    assert list(script.additional_credentials.all()) == [credential]
    assert "deploy.sh" in client.get(user.get_absolute_url()).content.decode()
    client.post(
        reverse("scripts:edit", args=[script.pk]), {"file": "deploy.sh", "command": "bash", "order": "2"}
    )
    script.refresh_from_db()
    assert (script.command, script.order) == ("bash", 2)
    client.post(reverse("scripts:detach", args=[script.pk]))
    assert not PostRotationScript.objects.exists()
    messages = list(
        AuditEvent.objects.filter(event=AuditEvent.RECORD_UPDATED, record_id=user.pk)
        .order_by("id")
        .values_list("message", flat=True)
    )
    assert len(messages) == 3
    assert "deploy.sh attached" in messages[0] and "deploy.sh changed" in messages[1]
    assert "deploy.sh detached" in messages[2]


def test_a_missing_file_cannot_be_attached_through_the_page(client, alice, scripts_dir):
    client.force_login(alice)
    user = make_user()
    response = client.post(reverse("scripts:attach", args=["user", user.pk]), {"file": "../x", "order": "1"})
    assert response.status_code == 200 and not PostRotationScript.objects.exists()


def test_the_attempt_page_lists_runs_and_output_only_for_operators(
    client, bob, carol, ldap_env, unique_name, scripts_dir
):
    user = ldap_env.account(unique_name("page"))
    attach(user, write_script(scripts_dir, "say.sh", "#!/bin/bash\necho visible-output\n"))
    attempt = rotate(user)
    client.force_login(bob)
    page = client.get(attempt.get_absolute_url()).content.decode()
    assert "say.sh" in page and "visible-output" in page and "Run scripts again" in page
    client.force_login(carol)
    page = client.get(attempt.get_absolute_url()).content.decode()
    assert "say.sh" in page and "visible-output" not in page and "Run scripts again" not in page


def test_run_scripts_again_delivers_the_current_password(
    client, bob, ldap_env, unique_name, scripts_dir, out_dir, django_capture_on_commit_callbacks
):
    user = ldap_env.account(unique_name("again"))
    attach(user, recorder(scripts_dir, out_dir))
    attempt = rotate(user)
    (out_dir / "record.py.json").unlink()

    client.force_login(bob)
    with django_capture_on_commit_callbacks(execute=True):  # the task runs in sync mode
        response = client.post(reverse("scripts:rerun", args=[attempt.pk]))

    assert response.status_code == 302
    user.refresh_from_db()
    assert received(out_dir)["newPassword"] == user.get_password()
    assert list(ScriptRun.objects.filter(attempt=attempt).values_list("round", flat=True)) == [1, 2]
    assert AuditEvent.objects.filter(
        event=AuditEvent.SCRIPTS_RERUN, attempt_id=attempt.pk, actor=bob
    ).exists()


@pytest.mark.django_db
@hypothesis_settings(
    max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_arbitrary_input_to_the_script_pages_never_breaks_the_server(client, alice, scripts_dir, data):
    client.force_login(alice)
    if not (scripts_dir / "ok.sh").exists():
        write_script(scripts_dir, "ok.sh", "#!/bin/bash\n")
    user = PamUser.objects.first() or make_user()
    script = PostRotationScript.objects.filter(user=user).first() or attach(user, "ok.sh")
    anything = st.one_of(
        st.text(max_size=30), st.sampled_from(["ok.sh", "../ok.sh", "/etc/passwd", "1", "-1", ""])
    )
    body = data.draw(
        st.dictionaries(
            st.sampled_from(["file", "command", "order", "additional_credentials", "keep"]),
            anything,
            max_size=5,
        )
    )
    for url in (
        reverse("scripts:attach", args=["user", user.pk]),
        reverse("scripts:attach", args=["configuration", user.configuration_id]),
        reverse("scripts:attach", args=["nothing", 1]),
        reverse("scripts:edit", args=[script.pk]),
        reverse("scripts:rerun", args=[999999]),
        reverse("scripts:decide", args=[999999]),
    ):
        response = client.post(url, body)
        assert response.status_code in (200, 302, 403, 404), (url, body, response.status_code)


# -- Keeper import and export ---------------------------------------------------------------------


def project_with_scripts(scripts_on_user) -> dict:
    return {
        "project": "Scripts",
        "pam_configuration": {
            "title": "Scripts configuration",
            "scripts": [{"file": "config.sh", "script_command": "bash"}],
        },
        "pam_data": {
            "resources": [
                {
                    "type": "pamDirectory",
                    "title": "Scripts directory",
                    "host": "ldap.example.test",
                    "directory_type": "openldap",
                    "scripts": "directory.sh",
                    "users": [
                        {
                            "type": "pamUser",
                            "title": "svc",
                            "login": "svc-login",
                            "distinguished_name": "uid=svc,dc=x",
                        }
                    ],
                }
            ],
            "users": [
                {"type": "pamUser", "title": "helper", "login": "helper-login"},
                {"type": "pamUser", "title": "app", "login": "app", "scripts": scripts_on_user},
            ],
        },
    }


@pytest.mark.django_db
def test_keeper_import_attaches_scripts_and_export_writes_them_back(scripts_dir):
    for name in ("config.sh", "directory.sh", "deploy.ps1"):
        write_script(scripts_dir, name, "#!/bin/bash\n")
    document = project_with_scripts(
        [
            {
                "file": "C:\\Keeper\\scripts\\deploy.ps1",
                "script_command": "pwsh",
                "additional_credentials": ["helper-login"],
            }
        ]
    )
    report = imports.import_projects(keeper.parse(json.dumps(document)))

    assert report.ok and not report.warnings, report.lines()
    app = PamUser.objects.get(title="app")
    script = PostRotationScript.objects.get(user=app)
    assert (script.file, script.command) == ("deploy.ps1", "pwsh")
    assert [c.title for c in script.additional_credentials.all()] == ["helper"]
    assert PostRotationScript.objects.get(directory__title="Scripts directory").file == "directory.sh"
    assert PostRotationScript.objects.get(configuration__title="Scripts configuration").command == "bash"

    exported = keeper_export.export_project(app.configuration)
    assert exported["pam_configuration"]["scripts"] == [
        {"file": "config.sh", "script_command": "bash", "additional_credentials": []}
    ]
    assert exported["pam_data"]["resources"][0]["scripts"][0]["file"] == "directory.sh"
    app_entry = next(u for u in exported["pam_data"]["users"] if u["title"] == "app")
    assert app_entry["scripts"] == [
        {"file": "deploy.ps1", "script_command": "pwsh", "additional_credentials": ["helper"]}
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "scripts, reason",
    [
        ([{"file": "/opt/keeper/missing.sh"}], "missing.sh"),
        ([{"file": "../escape.sh"}], "outside the scripts directory"),
        ([{"file": "config.sh", "additional_credentials": ["nobody"]}], "'nobody' names no user"),
        ([{"file": "config.sh", "script_command": "bash -c id"}], "one program"),
        ([42], "expected a file name"),
    ],
)
def test_keeper_import_rejects_an_unusable_script_with_the_reason(scripts_dir, scripts, reason):
    for name in ("config.sh", "directory.sh"):
        write_script(scripts_dir, name, "#!/bin/bash\n")
    with pytest.raises(import_report.ImportRejected) as rejected:
        imports.import_projects(keeper.parse(json.dumps(project_with_scripts(scripts))))
    assert any(reason in str(item) for item in rejected.value.report.rejected), rejected.value.report.lines()
    assert not PamUser.objects.exists() and not PostRotationScript.objects.exists()


def test_payload_is_one_base64_line(db):
    from scripts import payload

    user = make_user(password="Old-1")
    line = payload.build(user, "New-2", "Old-1", []).line
    assert "\n" not in line
    decoded = json.loads(base64.b64decode(line))
    assert decoded["resourceRecordUid"] == "" and decoded["newPassword"] == "New-2"


def test_run_scripts_again_is_a_task_of_ids_only_on_the_gateways_cluster(db, monkeypatch, scripts_dir):
    import django_q.tasks

    sent = []
    monkeypatch.setattr(django_q.tasks, "async_task", lambda *args, **kwargs: sent.append((args, kwargs)))
    configuration = make_configuration(gateway="dmz")
    user = make_user(configuration=configuration)
    attempt = user.attempts.create(state=AttemptState.SUCCEEDED)

    queue.enqueue_rerun(attempt)

    assert sent == [
        (
            ("scripts.tasks.rerun", attempt.pk),
            {"cluster": "dmz", "task_name": f"rerun-scripts-{attempt.pk}", "group": "scripts"},
        )
    ]


def test_directory_and_configuration_pages_show_their_scripts(client, alice, scripts_dir):
    from tests.conftest import make_directory

    write_script(scripts_dir, "notify.sh", "#!/bin/bash\n")
    directory = make_directory()
    attach(directory, "notify.sh")
    attach(directory.configuration, "notify.sh")
    client.force_login(alice)
    for record in (directory, directory.configuration):
        page = client.get(record.get_absolute_url()).content.decode()
        assert "Post-rotation scripts" in page and "notify.sh" in page and record.uid in page
