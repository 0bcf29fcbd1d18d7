"""Scripts apart from the vault (issue 21): their own OS user, every descendant killed, output masked and encrypted.

Real processes run as a real second user (the suite runs as root and creates it), with real
``setsid`` children and double-forked daemons; nothing here is mocked.
"""

from __future__ import annotations

import base64
import os
import pwd
import time
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from pamrotate import crypto
from rotation.models import AttemptState, ScriptsState
from scripts import files, masking, process
from scripts.models import PostRotationScript, RunState, ScriptRun
from tests.conftest import database_text, examples
from tests.secretscan import encodings
from tests.test_rotation import STRONG, rotate
from tests.test_scripts import (  # noqa: F401 - the *_fixture names are test_scripts' fixtures, shared
    SCRIPT_USER,
    attach,
    out_dir_fixture,
    script_account_fixture,
    scripts_dir_fixture,
    write_script,
)
from tests.test_scripts_only import scripts_only_user


@pytest.fixture
def script_user(settings, script_account):
    """Run this test's scripts as the script user (the others here choose their own setting)."""
    settings.SCRIPT_USER = SCRIPT_USER
    return script_account


@pytest.fixture
def drop_dir(out_dir):
    return out_dir


def gone(pid: int) -> bool:
    """Return whether a process has ended (and was reaped, or is a zombie waiting for it)."""
    try:
        return " Z " in Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True


def pids_in(path: Path) -> list[int]:
    for _ in range(50):  # a backgrounded echo may land a moment after the script's own exit
        if path.exists() and path.read_text().strip():
            return [int(pid) for pid in path.read_text().split()]
        time.sleep(0.05)
    raise AssertionError(f"{path} was never written")


# -- Masking ------------------------------------------------------------------------------------

ENCODER = r"""#!/usr/bin/env python3
import base64, json, sys, time
from urllib.parse import quote, quote_plus
params = json.loads(base64.b64decode(sys.stdin.readline()))
out = sys.stdout.buffer
for secret in (params["newPassword"], params["oldPassword"]):
    raw = secret.encode()
    basic = base64.b64encode((params["user"] + ":" + secret).encode())
    lines = [
        b"plain " + raw,
        b"b64 " + base64.b64encode(raw),
        b"b64url " + base64.urlsafe_b64encode(raw),
        b"b64nopad " + base64.b64encode(raw).rstrip(b"="),
        b"hex " + raw.hex().encode(),
        b"HEX " + raw.hex().upper().encode(),
        b"url " + quote(secret, safe="").encode(),
        b"urlplus " + quote_plus(secret).encode(),
        b"utf16le " + secret.encode("utf-16-le"),
        b"utf16be " + secret.encode("utf-16-be"),
        b"Authorization: Basic " + basic,
        b"debug token=" + base64.b64encode(b"xy" + raw + b"z"),
    ]
    for line in lines:
        out.write(line + b"\n")
    # The same forms again, cut in the middle across two writes.
    for line in lines:
        out.write(line[: len(line) // 2]); out.flush(); time.sleep(0.02)
        out.write(line[len(line) // 2 :] + b"\n"); out.flush()
    sys.stderr.buffer.write(b"err " + base64.b64encode(raw) + b" " + secret.encode("utf-16-le") + b"\n")
"""


def printed_forms(secret: str, login: str) -> list[str]:
    """Return every form of a password the ENCODER script prints (and more), as text that could be stored or shown."""
    return [*sorted(encodings(secret)), base64.b64encode(f"{login}:{secret}".encode()).decode()]


def test_a_password_printed_in_every_encoding_is_neither_stored_nor_shown(
    db, client, bob, scripts_dir, script_user
):
    user = scripts_only_user(login="svc-enc", title="Svc enc")
    attach(user, write_script(scripts_dir, "encode.py", ENCODER), command="python3")

    attempt = rotate(user)

    assert attempt.state == AttemptState.SUCCEEDED, attempt.error_message
    user.refresh_from_db()
    new = user.get_password()
    run = ScriptRun.objects.get(attempt=attempt)
    assert run.state == RunState.SUCCEEDED, run.reason
    assert run.stdout.count("plain ********") == 4 and "Authorization: Basic ********" in run.stdout
    assert "err ********" in run.stderr
    forms = printed_forms(new, user.login) + printed_forms(STRONG, user.login)
    assert len(forms) >= 20
    stored = database_text()
    page = client.get(attempt.get_absolute_url())
    html = page.content.decode("utf-8", "replace")
    for form in forms:
        assert form not in run.stdout and form not in run.stderr, form
        assert form not in stored, form
        assert form not in html, form
    # Output is encrypted at rest, and Operators (who may reveal the password) see it masked.
    assert run.stdout_encrypted.startswith(crypto.PREFIX + ":") and "plain" not in run.stdout_encrypted
    client.force_login(bob)
    html = client.get(attempt.get_absolute_url()).content.decode("utf-8", "replace")
    assert "Authorization: Basic ********" in html
    for form in forms:
        assert form not in html, form


def test_script_output_is_shown_only_to_whom_may_reveal_the_password(db, client, scripts_dir, script_user):
    from tests.conftest import make_persona

    user = scripts_only_user(login="svc-shown", title="Svc shown")
    attach(user, write_script(scripts_dir, "say.sh", "#!/bin/bash\necho visible-output-line\n"))
    attempt = rotate(user)
    assert ScriptRun.objects.get(attempt=attempt).stdout.strip() == "visible-output-line"

    client.force_login(make_persona("carol"))  # a Viewer: sees the runs, not what they printed
    html = client.get(attempt.get_absolute_url()).content.decode()
    assert "say.sh" in html and "visible-output-line" not in html
    client.force_login(make_persona("bob"))  # an Operator may reveal the current password
    assert "visible-output-line" in client.get(attempt.get_absolute_url()).content.decode()


@hypothesis_settings(max_examples=examples(150), deadline=None)
@given(
    secret=st.text(min_size=6, max_size=40).filter(lambda s: "\x00" not in s),
    login=st.text(alphabet="abcdefghijklmnop-", min_size=1, max_size=12),
    before=st.binary(max_size=20),
    after=st.binary(max_size=20),
)
def test_mask_leaves_no_encoding_of_the_secret_whatever_surrounds_it(secret, login, before, after):
    raw = secret.encode()
    printed = [
        raw,
        base64.b64encode(raw),
        base64.urlsafe_b64encode(raw).rstrip(b"="),
        base64.b64encode(before + raw + after),
        base64.b64encode(f"{login}:{secret}".encode()),
        raw.hex().encode(),
        raw.hex().upper().encode(),
        quote(secret, safe="").encode(),
        quote_plus(secret).encode(),
        secret.encode("utf-16-le"),
        secret.encode("utf-16-be"),
    ]
    # Inside base64(before + secret + after), the characters made of the secret's bits alone.
    offset = len(before) % 3
    inner = base64.b64encode(before + raw + after)[len(before) // 3 * 4 :]
    inner = inner[-(-8 * offset // 6) : 8 * (offset + len(raw)) // 6]
    for data in printed:
        masked = masking.mask(before + b" " + data + b" " + after, [secret, f"{login}:{secret}"])
        assert masking.MASK.decode() in masked
        for form in (*printed[:3], *printed[4:], inner):
            if len(form) >= masking.SHORTEST_ENCODED:
                assert form.decode("latin-1") not in masked.encode("utf-8", "surrogateescape").decode(
                    "latin-1"
                )


# -- The script user: no key, no data directory, no worker environment ---------------------------


def test_a_script_cannot_read_the_workers_environment_the_key_file_or_the_data_directory(
    db, scripts_dir, script_user, settings, monkeypatch
):
    key_file = Path(settings.DATA_DIR) / "isolation-test.key"
    crypto.write_key_file(key_file, [crypto.Key.generate()])
    settings.ENCRYPTION_KEY_FILE = str(key_file)  # checked for its mode; the keys in use stay the same
    assert os.stat(settings.DATA_DIR).st_mode & 0o777 == 0o700
    assert os.stat(key_file).st_mode & 0o777 == 0o600
    body = f"""#!/bin/bash
id -un
stat -c 'workdir-owner=%U' .
cat /proc/$PPID/environ
cat /proc/{os.getpid()}/environ
cat {key_file}
ls {settings.DATA_DIR}
cat {settings.DATA_DIR}/test.sqlite3
exit 0
"""
    user = scripts_only_user(login="svc-nosy", title="Svc nosy")
    attach(user, write_script(scripts_dir, "nosy.sh", body))

    attempt = rotate(user)

    run = ScriptRun.objects.get(attempt=attempt)
    assert run.stdout.split()[:2] == [SCRIPT_USER, f"workdir-owner={SCRIPT_USER}"]
    denied = [line for line in run.stderr.splitlines() if "Permission denied" in line]
    assert len(denied) == 5, run.stderr  # both environs, the key file, the directory, the database
    assert os.environ["PAMROTATE_ENCRYPTION_KEY"] not in run.stdout + run.stderr
    assert key_file.read_text().split()[-1] not in run.stdout + run.stderr
    assert "PAMROTATE" not in run.stdout + run.stderr
    key_file.unlink()


def test_production_refuses_to_run_a_script_without_its_own_user(db, scripts_dir, settings, drop_dir):
    settings.PRODUCTION = True
    settings.SCRIPT_USER = ""
    monkey = drop_dir / "ran"
    user = scripts_only_user(login="svc-prod", title="Svc prod")
    attach(user, write_script(scripts_dir, "touch.sh", f"#!/bin/bash\ntouch {monkey}\n"))

    attempt = rotate(user)

    run = ScriptRun.objects.get(attempt=attempt)
    assert run.state == RunState.FAILED and not monkey.exists()
    assert "PAMROTATE_SCRIPT_USER is not set" in run.reason and "useradd --system" in run.reason
    assert attempt.state == AttemptState.UNKNOWN and attempt.scripts_state == ScriptsState.FAILED


def test_dev_mode_without_a_script_user_runs_as_the_worker_and_says_so(db, scripts_dir, settings, caplog):
    settings.SCRIPT_USER = ""
    user = scripts_only_user(login="svc-dev", title="Svc dev")
    attach(user, write_script(scripts_dir, "who.sh", "#!/bin/bash\nid -un\n"))

    attempt = rotate(user)

    run = ScriptRun.objects.get(attempt=attempt)
    assert run.state == RunState.SUCCEEDED and run.stdout.strip() == pwd.getpwuid(os.geteuid()).pw_name
    assert "PAMROTATE_SCRIPT_USER is not set" in run.reason
    assert any("PAMROTATE_SCRIPT_USER is not set" in record.getMessage() for record in caplog.records)


def test_a_missing_script_user_refuses_with_how_to_create_it(db, settings, tmp_path):
    settings.SCRIPT_USER = "pamrotate-no-such-user"
    script = tmp_path / "x.sh"
    script.write_text("#!/bin/bash\n")
    script.chmod(0o700)
    result = process.execute(script, "", "line", 5)
    assert result.exit_code is None and "does not exist" in result.error and "useradd" in result.error


# -- Everything a script starts ends with it -----------------------------------------------------

ESCAPER = """#!/bin/bash
pwd > {out}/cwd
setsid sleep 1000 >/dev/null 2>&1 < /dev/null &
echo $! >> {out}/pids
( ( sleep 1001 >/dev/null 2>&1 < /dev/null & echo $! >> {out}/pids ) & )
setsid bash -c 'trap "" TERM HUP; ( sleep 1002 & echo $! >> {out}/pids ); sleep 1003' &
echo $! >> {out}/pids
sleep 0.3
{end}
"""


@pytest.mark.parametrize("end", ["exit 0", "exit 4", "sleep 300"], ids=["exits", "fails", "times-out"])
def test_setsid_children_and_double_forked_daemons_are_killed_when_the_script_ends(
    script_user, drop_dir, tmp_path, settings, end
):
    script = tmp_path / "escape.sh"
    script.write_text(ESCAPER.format(out=drop_dir, end=end))
    script.chmod(0o700)

    started = time.monotonic()
    result = process.execute(script, "", "line", 2)

    assert time.monotonic() - started < 15
    assert result.timed_out == (end == "sleep 300")
    assert result.exit_code == {"exit 0": 0, "exit 4": 4, "sleep 300": None}[end]
    pids = pids_in(drop_dir / "pids")
    assert len(pids) >= 3
    for pid in pids:
        assert gone(pid), f"process {pid} outlived its script: {Path(f'/proc/{pid}/cmdline').read_bytes()!r}"
    # Its working directory (the script user's own) is removed too. Named by the script itself: a
    # script of a test on another xdist worker may have its own directory there at this moment.
    workdir = Path((drop_dir / "cwd").read_text().strip())
    assert workdir.name.startswith("pamrotate-script-") and not workdir.exists()


def test_a_rotation_whose_script_times_out_kills_its_escaped_children(
    db, scripts_dir, script_user, drop_dir, settings
):
    settings.SCRIPT_TIMEOUT = 2
    user = scripts_only_user(login="svc-slow", title="Svc slow")
    attach(user, write_script(scripts_dir, "slow.sh", ESCAPER.format(out=drop_dir, end="sleep 300")))

    attempt = rotate(user)

    run = ScriptRun.objects.get(attempt=attempt)
    assert run.state == RunState.TIMED_OUT and run.exit_code is None
    assert attempt.state == AttemptState.UNKNOWN
    assert all(gone(pid) for pid in pids_in(drop_dir / "pids"))


# -- The command: one program name or an absolute path ----------------------------------------


@pytest.mark.parametrize(
    "command", ["../bin/sh", "./sh", "bin/sh", "..", ".", "/usr/../bin/sh", "/bin/./sh", "sh -c"]
)
def test_a_relative_or_dotted_command_is_refused_when_attached_and_when_it_runs(db, scripts_dir, command):
    user = scripts_only_user(login="svc-rel", title="Svc rel")
    write_script(scripts_dir, "deploy.sh", "#!/bin/bash\nexit 0\n")
    with pytest.raises(ValidationError):
        attach(user, "deploy.sh", command=command)
    with pytest.raises(files.ScriptRefused):
        files.check_command(command)
    # Stored past the form (an old row, a hand edit): refused again right before it runs.
    PostRotationScript.objects.create(user=user, file="deploy.sh", command=command)

    attempt = rotate(user)

    run = ScriptRun.objects.get(attempt=attempt)
    assert run.state == RunState.FAILED and run.reason.startswith("refused:"), run.reason


@pytest.mark.parametrize("command", ["bash", "python3", "python3.11", "/usr/bin/python3", "/bin/bash"])
def test_a_program_name_or_an_absolute_path_is_accepted(command):
    files.check_command(command)


# -- Output stored before this change is encrypted by the migration --------------------------------


def test_the_migration_encrypts_output_stored_in_clear(transactional_db):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate([("scripts", "0001_initial")])
    old = executor.loader.project_state([("scripts", "0001_initial")]).apps
    user = scripts_only_user(login="svc-old", title="Svc old")
    attempt = old.get_model("rotation", "RotationAttempt").objects.create(user_id=user.pk, state="succeeded")
    old.get_model("scripts", "ScriptRun").objects.create(
        attempt_id=attempt.pk,
        record_type="user",
        record_title="Svc old",
        file="deploy.sh",
        state="succeeded",
        started_at="2026-01-01T00:00:00Z",
        stdout="token printed-in-clear-before-encryption",
        stderr="",
    )
    try:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
        run = ScriptRun.objects.get(attempt_id=attempt.pk)
        assert run.stdout == "token printed-in-clear-before-encryption" and run.stderr == ""
        assert run.stdout_encrypted.startswith(crypto.PREFIX + ":") and run.stderr_encrypted == ""
        assert "printed-in-clear" not in database_text()
    finally:
        MigrationExecutor(connection).migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def test_key_rotation_re_encrypts_script_output(db, scripts_dir):
    from rotation.management.commands.rotate_encryption_key import reencrypt_all

    user = scripts_only_user(login="svc-rekey", title="Svc rekey")
    attach(user, write_script(scripts_dir, "say.sh", "#!/bin/bash\necho out-line; echo err-line >&2\n"))
    run = ScriptRun.objects.get(attempt=rotate(user))
    before = crypto.ring()
    rotated = crypto.KeyRing([crypto.Key.generate(), *before.keys])

    assert reencrypt_all(rotated) >= 2

    run.refresh_from_db()
    for ciphertext, text in ((run.stdout_encrypted, "out-line\n"), (run.stderr_encrypted, "err-line\n")):
        assert rotated.key_id_of(ciphertext) == rotated.current.kid
        assert rotated.decrypt(ciphertext) == text


def test_a_worker_that_cannot_switch_users_or_an_open_data_directory_refuses(
    script_user, settings, tmp_path, monkeypatch
):
    script = tmp_path / "x.sh"
    script.write_text("#!/bin/bash\n")
    script.chmod(0o700)
    monkeypatch.setattr(process, "_can_switch_users", lambda: False)
    result = process.execute(script, "", "line", 5)
    assert (
        result.exit_code is None and "cannot run scripts as" in result.error and "CAP_SETUID" in result.error
    )

    monkeypatch.undo()
    settings.SCRIPT_USER = SCRIPT_USER
    open_data = tmp_path / "data"
    open_data.mkdir(mode=0o755)
    open_data.chmod(0o755)
    settings.DATA_DIR = open_data
    result = process.execute(script, "", "line", 5)
    assert result.exit_code is None and "could read the vault's files" in result.error
    assert f"chmod o-rwx {open_data}" in result.error
