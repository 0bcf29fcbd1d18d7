"""The command line: pam_rotation list/info/edit and pam_action rotate against a real slapd."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from records import schedules
from records.models import PamUser, RotationStatus
from rotation.models import AttemptState, RotationAttempt
from tests.conftest import make_user
from tests.test_rotation import STRONG, make_env


@pytest.fixture
def env(db, slapd, unique_name, monkeypatch):
    monkeypatch.setattr("getpass.getuser", lambda: "ops-maria")
    return make_env(slapd, unique_name)


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def exported_password(configuration_title: str, user_title: str) -> str:
    out, _ = run("pam_export", "--configuration", configuration_title, "--include-secrets")
    document = json.loads(out)
    users = document["pam_data"]["users"] + [u for r in document["pam_data"]["resources"] for u in r["users"]]
    return next(u["password"] for u in users if u["title"] == user_title)


# -- pam_action rotate --------------------------------------------------------------------------


def test_rotate_with_wait_rotates_and_the_exported_password_binds(env, slapd, unique_name):
    user = env.account(unique_name("cli"))

    out, err = run("pam_action", "rotate", "--user", user.title, "--wait")

    assert "rotated" in out and f"[{'#' * 30}] 1/1" in err
    attempt = RotationAttempt.objects.get(user=user)
    assert attempt.state == AttemptState.SUCCEEDED and attempt.requested_by_name == "ops-maria"
    password = exported_password(env.directory.configuration.title, user.title)
    assert password != STRONG
    assert slapd.can_bind(user.distinguished_name, password)
    assert not slapd.can_bind(user.distinguished_name, STRONG)
    event = AuditEvent.objects.get(attempt_id=attempt.pk)
    assert event.event == AuditEvent.ROTATION_ON_DEMAND_OK and event.actor_name == "ops-maria"


def test_rotate_a_directory_rotates_its_rotatable_users_and_writes_nothing_for_the_others(
    env, slapd, unique_name
):
    first, second = env.account(unique_name("d1")), env.account(unique_name("d2"))
    off = env.account(unique_name("d3"), rotation_enabled=False)
    managed = env.account(unique_name("d4"))
    PamUser.objects.filter(pk=managed.pk).update(managed=True)

    out, _ = run("pam_action", "rotate", "--directory", env.directory.title, "--wait")

    assert "2 rotation(s) succeeded." in out, out
    for user in (first, second):
        user.refresh_from_db()
        assert user.rotation_status == RotationStatus.SUCCEEDED
        assert slapd.can_bind(user.distinguished_name, user.get_password())
    # As in the UI's bulk rotation: no refused attempt (and no audit event) for accounts it does not cover.
    assert not RotationAttempt.objects.filter(user__in=[off, managed]).exists()
    assert not AuditEvent.objects.filter(record_id__in=[off.pk, managed.pk], category="rotation").exists()


def test_a_failed_rotation_exits_non_zero_with_its_reason(env, unique_name):
    user = env.account(unique_name("weak"), complexity="6,1,1,1,1")  # slapd ppolicy wants 8

    with pytest.raises(CommandError, match="1 of 1 rotation") as info:
        call_command(
            "pam_action",
            "rotate",
            "--user",
            user.title,
            "--wait",
            stdout=io.StringIO(),
            stderr=(err := io.StringIO()),
        )

    assert "quality" in err.getvalue().lower()
    assert "Traceback" not in str(info.value)


def test_rotate_dry_run_rotates_nothing(env, unique_name):
    user = env.account(unique_name("dry"))
    off = env.account(unique_name("dryoff"), managed=True)

    out, _ = run("pam_action", "rotate", "--configuration", env.directory.configuration.title, "--dry-run")

    assert f"would rotate {user.title}" in out
    assert off.title not in out  # a configuration's rotation covers only its rotatable accounts
    out, _ = run("pam_action", "rotate", "--user", off.title, "--dry-run")
    assert f"would not rotate {off.title}: This account is managed" in out
    assert not RotationAttempt.objects.exists()
    user.refresh_from_db()
    assert user.get_password() == STRONG


def test_an_ambiguous_user_name_lists_the_matches(env, unique_name):
    one = env.account(unique_name("amb"))
    other = make_user(configuration=env.directory.configuration, title=unique_name("other"), login=one.login)

    with pytest.raises(CommandError, match="ambiguous") as info:
        run("pam_action", "rotate", "--user", one.login, "--wait")

    assert one.title in str(info.value) and other.title in str(info.value)
    assert not RotationAttempt.objects.exists()


def test_an_unknown_user_is_a_clear_error(env):
    with pytest.raises(CommandError, match="no PAM user has the title or login 'nobody'"):
        run("pam_rotation", "info", "nobody")


# -- pam_rotation list / info / edit ---------------------------------------------------------------


def test_list_as_json_parses(env, unique_name):
    user = env.account(unique_name("lst"))

    out, _ = run("pam_rotation", "list", "--format", "json", "--verbose")

    rows = {row["title"]: row for row in json.loads(out)}
    row = rows[user.title]
    assert row["login"] == user.login and row["directory"] == env.directory.title
    assert row["configuration"] == env.directory.configuration.title
    assert row["enabled"] is True and row["status"] == "never"
    assert row["distinguished_name"] == user.distinguished_name


def test_list_as_a_table_has_a_header(env, unique_name):
    user = env.account(unique_name("tbl"))

    out, _ = run("pam_rotation", "list")

    assert out.splitlines()[0].startswith("Title") and user.title in out


def test_info_shows_settings_and_last_attempts(env, unique_name):
    user = env.account(unique_name("inf"))
    run("pam_action", "rotate", "--user", user.title, "--wait")

    out, _ = run("pam_rotation", "info", user.title, "--format", "json")

    data = json.loads(out)
    assert data["title"] == user.title and data["attempts"][0]["state"] == "succeeded"
    text, _ = run("pam_rotation", "info", user.login)
    assert "Last attempts:" in text and "succeeded" in text


def test_edit_sets_a_cron_schedule_and_the_next_rotation(env, unique_name):
    user = env.account(unique_name("ed"))
    assert user.next_rotation_at is None

    run("pam_rotation", "edit", "--user", user.title, "--schedule-cron", "0 2 * * 0", "--tz", "Europe/Berlin")

    user.refresh_from_db()
    assert (user.schedule_type, user.schedule_cron, user.schedule_tz) == (
        schedules.CRON,
        "0 2 * * 0",
        "Europe/Berlin",
    )
    assert user.next_rotation_at == user.compute_next_rotation()
    assert (
        user.next_rotation_at.astimezone(schedules.zone("Europe/Berlin")).strftime("%a %H:%M") == "Sun 02:00"
    )
    event = AuditEvent.objects.get(event=AuditEvent.RECORD_UPDATED, record_id=user.pk)
    assert event.actor_name == "ops-maria"
    assert "schedule_cron" in event.message and "schedule_tz" in event.message


def test_edit_a_directory_changes_every_user_under_it(env, unique_name):
    users = [env.account(unique_name("e1")), env.account(unique_name("e2"))]

    run("pam_rotation", "edit", "--directory", env.directory.title, "--complexity", "24,2,2,2,2", "--disable")

    for user in users:
        user.refresh_from_db()
        assert user.password_complexity == "24,2,2,2,2" and not user.rotation_enabled


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--schedule-cron", "*/5 * * * *"], "at most once an hour"),
        (["--schedule-cron", "0 2 * * 0", "--tz", "Mars/Olympus"], "not an IANA time zone"),
        (["--complexity", "8,5,5,5,5"], "more than the length"),
        ([], "nothing to change"),
    ],
)
def test_edit_rejects_bad_input_and_changes_nothing(env, unique_name, args, expected):
    user = env.account(unique_name("bad"))

    with pytest.raises(CommandError, match=expected):
        run("pam_rotation", "edit", "--user", user.title, *args)

    user.refresh_from_db()
    assert user.schedule_type == schedules.ON_DEMAND and user.password_complexity == ""
    assert not AuditEvent.objects.filter(event=AuditEvent.RECORD_UPDATED).exists()


def test_edit_that_breaks_validation_is_refused_whole(env, unique_name):
    good = env.account(unique_name("ok"))
    no_dn = env.account(unique_name("nodn"))
    no_dn.distinguished_name = ""
    no_dn.login = "not-on-the-directory"  # so the DN lookup from the login finds nothing
    no_dn.rotation_enabled = False
    no_dn.save()

    with pytest.raises(CommandError, match="nothing was changed"):
        run("pam_rotation", "edit", "--directory", env.directory.title, "--enable")

    good.refresh_from_db()
    no_dn.refresh_from_db()
    assert not no_dn.rotation_enabled


def test_bad_arguments_are_command_errors(env):
    with pytest.raises(CommandError):
        run("pam_action", "rotate")
    with pytest.raises(CommandError):
        run("pam_rotation", "frobnicate")


def test_rotate_without_wait_queues_for_the_gateway(
    env, unique_name, django_capture_on_commit_callbacks, monkeypatch
):
    user = env.account(unique_name("q"))
    sent = []
    monkeypatch.setattr("rotation.services.enqueue_attempt", sent.append)
    monkeypatch.setattr("rotation.management.commands.pam_action.worker_running", lambda: True)

    with django_capture_on_commit_callbacks(execute=True):
        out, _ = run("pam_action", "rotate", "--user", user.title)

    attempt = RotationAttempt.objects.get(user=user)
    assert f"rotation #{attempt.pk} queued" in out
    assert sent == [attempt] and attempt.state == AttemptState.QUEUED


@pytest.mark.django_db
def test_list_shows_every_account_the_ui_lists():
    from tests.conftest import make_directory

    directory = make_directory()
    configuration = directory.configuration
    admin = make_user(configuration, title="Rotator credential", rotation_enabled=False)
    directory.administrative_credential = admin
    directory.save()
    make_user(configuration, title="Off and loose", rotation_enabled=False)
    make_user(configuration, title="On the directory", resource=directory, distinguished_name="cn=a,dc=b")
    make_user(title="Elsewhere", rotation_enabled=False)

    out, _ = run("pam_rotation", "list", "--format", "json")

    listed = {row["title"] for row in json.loads(out)}
    assert listed == set(PamUser.objects.values_list("title", flat=True))
    assert {"Rotator credential", "Off and loose", "On the directory", "Elsewhere"} <= listed


# -- The README's CLI lines after `make run` (issue 16) -----------------------------------------


def _without_pamrotate_env() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("PAMROTATE_", "DJANGO_"))}


def test_make_run_writes_a_private_env_once_and_never_overwrites_it(tmp_path):
    import subprocess
    from pathlib import Path

    makefile = Path(__file__).resolve().parent.parent / "Makefile"
    made = subprocess.run(
        ["make", "-s", "-f", str(makefile), ".env"], cwd=tmp_path, capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    env_file = tmp_path / ".env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert "PAMROTATE_MODE=dev" in env_file.read_text().splitlines()
    env_file.write_text("PAMROTATE_MODE=production\n")
    subprocess.run(["make", "-s", "-f", str(makefile), ".env"], cwd=tmp_path, capture_output=True, check=True)
    assert env_file.read_text() == "PAMROTATE_MODE=production\n"


def test_gitignore_keeps_the_env_file_out_of_git():
    import subprocess

    out = subprocess.run(["git", "check-ignore", "-q", ".env"], capture_output=True)
    assert out.returncode == 0


def test_the_readme_cli_works_with_only_the_env_file_and_prints_no_info_lines(tmp_path):
    """A copy of the project whose only configuration is the .env `make run` writes."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    project = tmp_path / "pamrotate"
    skip = shutil.ignore_patterns(
        ".venv", ".git", "data", "test-artifacts", ".hypothesis", "*_cache", "*.pyc"
    )
    shutil.copytree(root, project, ignore=skip)
    (project / ".env").unlink(missing_ok=True)
    subprocess.run(["make", "-s", ".env"], cwd=project, check=True, capture_output=True)
    env = _without_pamrotate_env()

    def manage(*args):
        # From another directory, as an operator would: the .env is found next to manage.py.
        return subprocess.run(
            [sys.executable, str(project / "manage.py"), *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert manage("migrate", "--noinput", "-v0").returncode == 0
    out = manage("pam_rotation", "list")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "No users."
    assert " INFO " not in out.stdout + out.stderr, out.stderr
    assert (project / "data" / "pamrotate.sqlite3").exists()
    # A variable set in the environment wins over the .env.
    out = subprocess.run(
        [sys.executable, str(project / "manage.py"), "check"],
        env=env | {"PAMROTATE_MODE": "production"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0 and "PAMROTATE_SECRET_KEY" in out.stderr


def test_the_env_loader_reads_quotes_and_export_and_never_overrides(tmp_path, monkeypatch):
    from pamrotate.envfile import load_env_file, parse

    assert parse("# c\nexport A='x y'\nB=\"2\"\nC = 3\n\nnot a line\n") == {"A": "x y", "B": "2", "C": "3"}
    path = tmp_path / ".env"
    path.write_text("PAMROTATE_TEST_ONE=from-file\nPAMROTATE_TEST_TWO=from-file\n")
    monkeypatch.setenv("PAMROTATE_TEST_ONE", "from-env")
    monkeypatch.delenv("PAMROTATE_TEST_TWO", raising=False)
    load_env_file(path)
    import os

    assert os.environ["PAMROTATE_TEST_ONE"] == "from-env"
    assert os.environ.pop("PAMROTATE_TEST_TWO") == "from-file"


def test_django_q_logs_warnings_only_and_ours_info():
    import logging

    assert logging.getLogger("django-q").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("rotation.dispatch").getEffectiveLevel() == logging.INFO


def test_a_python_without_django_hands_manage_py_to_the_projects_venv(tmp_path):
    """The README's `python manage.py …` works after `make run` without activating the venv."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    base = sys._base_executable  # the interpreter the venv was made from
    assert subprocess.run([base, "-c", "import django"], capture_output=True).returncode != 0
    env = _without_pamrotate_env() | {
        "PAMROTATE_MODE": "dev",
        "PAMROTATE_DATA_DIR": str(tmp_path),
        "PAMROTATE_ENV_FILE": "",
    }
    out = subprocess.run(
        [base, str(root / "manage.py"), "check"], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "no issues" in out.stdout
