"""Scripts-only rotation ("Run PAM scripts only") and workers killed while scripts run, with real processes."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from records.models import PamUser, RotationStatus, RotationType
from rotation import ldap, services
from rotation.models import AttemptState, ErrorClass, ScriptsState
from scripts.models import RunState, ScriptRun
from tests.conftest import make_configuration, make_user
from tests.test_rotation import STRONG, make_env, rotate
from tests.test_scripts import (  # noqa: F401 - the *_fixture names are test_scripts' fixtures, shared
    as_script_user_fixture,
    attach,
    out_dir_fixture,
    received,
    recorder,
    script_account_fixture,
    scripts_dir_fixture,
    write_script,
)


def scripts_only_user(**fields) -> PamUser:
    return make_user(
        configuration=make_configuration(),
        password=STRONG,
        rotation_type=RotationType.SCRIPTS_ONLY,
        rotation_enabled=True,
        **fields,
    )


@pytest.fixture
def no_directory(monkeypatch):
    """Fail the test if anything tries to reach a directory."""

    def refuse(*args, **kwargs):
        raise AssertionError("a scripts-only account must never be bound or changed on a directory")

    for name in ("verify_password", "set_password", "change_own_password"):
        monkeypatch.setattr(ldap, name, refuse)


def test_scripts_only_commits_when_every_script_exits_0(db, scripts_dir, out_dir, no_directory):
    user = scripts_only_user()
    attach(user, recorder(scripts_dir, out_dir))
    attach(user.configuration, write_script(scripts_dir, "ok.sh", "#!/bin/bash\nexit 0\n"))

    attempt = rotate(user)

    assert attempt.state == AttemptState.SUCCEEDED, attempt.error_message
    assert attempt.scripts_state == ScriptsState.SUCCEEDED
    user.refresh_from_db()
    params = received(out_dir)
    assert params["newPassword"] == user.get_password() != STRONG
    assert params["oldPassword"] == STRONG
    assert params["resourceRecordUid"] == ""
    assert [v.get_password() for v in user.password_versions.all()] == [STRONG]
    assert user.rotation_status == RotationStatus.SUCCEEDED


def test_scripts_only_without_a_script_fails_before_generating(db, scripts_dir, no_directory):
    user = scripts_only_user()
    attempt = rotate(user)
    assert attempt.state == AttemptState.FAILED and attempt.error_class == ErrorClass.CONFIGURATION
    assert "needs a post-rotation script" in attempt.error_message


def test_a_failing_script_keeps_both_passwords_until_run_again_succeeds(
    client, bob, scripts_dir, out_dir, no_directory, django_capture_on_commit_callbacks
):
    user = scripts_only_user()
    attach(user, recorder(scripts_dir, out_dir))
    write_script(scripts_dir, "deploy.sh", "#!/bin/bash\nexit 3\n")
    attach(user, "deploy.sh", order=2)

    attempt = rotate(user)

    assert attempt.state == AttemptState.UNKNOWN
    assert attempt.scripts_state == ScriptsState.FAILED
    assert "script deploy.sh failed (exit 3)" in attempt.error_message
    assert "Both passwords are kept" in attempt.error_message
    user.refresh_from_db()
    delivered = received(out_dir)["newPassword"]
    assert attempt.get_pending() == delivered
    assert user.get_password() == STRONG
    assert user.rotation_status == RotationStatus.UNKNOWN and "deploy.sh" in user.rotation_error
    event = AuditEvent.objects.get(attempt_id=attempt.pk, event=AuditEvent.ROTATION_ON_DEMAND_FAIL)
    assert "script deploy.sh failed (exit 3)" in event.message

    # Reconciliation has no directory to ask: the attempt stays unknown, and nothing rotates over it.
    assert services.reconcile_stale() == 1
    attempt.refresh_from_db()
    assert attempt.state == AttemptState.UNKNOWN and attempt.get_pending() == delivered
    blocked = rotate(user)
    assert blocked.state == AttemptState.FAILED and "still unresolved" in blocked.error_message

    # The script is fixed; an operator runs the scripts again, which commits the pending password.
    write_script(scripts_dir, "deploy.sh", "#!/bin/bash\nexit 0\n")
    client.force_login(bob)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("scripts:rerun", args=[attempt.pk]))
    attempt.refresh_from_db()
    user.refresh_from_db()
    assert attempt.state == AttemptState.RECONCILED, attempt.error_message
    assert received(out_dir)["newPassword"] == delivered == user.get_password()
    assert received(out_dir)["oldPassword"] == STRONG
    assert user.rotation_status == RotationStatus.SUCCEEDED and user.rotation_error == ""
    assert list(ScriptRun.objects.filter(attempt=attempt).values_list("round", "state")) == [
        (1, RunState.SUCCEEDED),
        (1, RunState.FAILED),
        (2, RunState.SUCCEEDED),
        (2, RunState.SUCCEEDED),
    ]


@pytest.mark.parametrize("keep", ["pending", "stored"])
def test_an_administrator_decides_which_password_an_unresolved_account_has(
    client, alice, carol, scripts_dir, no_directory, keep
):
    user = scripts_only_user()
    attach(user, write_script(scripts_dir, "deploy.sh", "#!/bin/bash\nexit 1\n"))
    attempt = rotate(user)
    pending = attempt.get_pending()
    url = reverse("scripts:decide", args=[attempt.pk])
    client.force_login(carol)
    assert client.post(url, {"keep": keep}).status_code == 403

    client.force_login(alice)
    client.post(url, {"keep": keep})

    attempt.refresh_from_db()
    user.refresh_from_db()
    if keep == "pending":
        assert attempt.state == AttemptState.RECONCILED and user.get_password() == pending
    else:
        assert attempt.state == AttemptState.FAILED and user.get_password() == STRONG
        assert attempt.pending_password_encrypted == ""
    assert AuditEvent.objects.filter(
        event=AuditEvent.SCRIPTS_DECIDED, attempt_id=attempt.pk, actor=alice
    ).exists()


# -- A worker killed while a script runs ------------------------------------------------------------


def run_in_killed_worker(attempt_id: int, scripts_dir) -> None:
    """Run an attempt in a child process that is killed (-9) right after a script starts."""
    child_env = dict(
        os.environ,
        PAMROTATE_FAULT_POINT="during_scripts",
        PAMROTATE_SCRIPTS_DIR=str(scripts_dir),
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=f"sqlite:///{connection.settings_dict['NAME']}",
    )
    code = (
        f"import django; django.setup(); from rotation.services import run_attempt; run_attempt({attempt_id})"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=child_env, capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_during_a_scripts_only_change_leaves_it_unknown_then_run_again_commits(
    client, scripts_dir, out_dir, no_directory
):
    from tests.conftest import make_persona

    bob = make_persona("bob")
    user = scripts_only_user()
    attach(user, recorder(scripts_dir, out_dir))
    attempt = services.request_rotation(user, enqueue=False)

    run_in_killed_worker(attempt.pk, scripts_dir)

    attempt.refresh_from_db()
    assert attempt.state == AttemptState.RUNNING and attempt.pending_password_encrypted
    run = ScriptRun.objects.get(attempt=attempt)
    assert run.state == RunState.RUNNING  # marked before it started, so a later look finds it
    PamUser.objects.filter(pk=user.pk).update(lease_until=timezone.now() - dt.timedelta(seconds=1))
    services.reconcile_stale()
    attempt.refresh_from_db()
    run.refresh_from_db()
    assert attempt.state == AttemptState.UNKNOWN
    assert run.state == RunState.UNKNOWN
    assert attempt.scripts_state == ScriptsState.UNKNOWN
    user.refresh_from_db()
    assert user.get_password() == STRONG

    client.force_login(bob)
    client.post(reverse("scripts:rerun", args=[attempt.pk]))  # a transactional test: the task runs at once
    attempt.refresh_from_db()
    user.refresh_from_db()
    assert attempt.state == AttemptState.RECONCILED, (attempt.error_message, attempt.scripts_message)
    assert user.get_password() == attempt.user.get_password() == received(out_dir)["newPassword"] != STRONG


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_during_post_rotation_scripts_keeps_the_rotation_and_run_again_delivers(
    client, slapd, unique_name, scripts_dir, out_dir
):
    from tests.conftest import make_persona

    bob = make_persona("bob")
    env = make_env(slapd, unique_name)
    user = env.account(unique_name("killed"))
    attach(user, recorder(scripts_dir, out_dir))
    attempt = services.request_rotation(user, enqueue=False)

    run_in_killed_worker(attempt.pk, scripts_dir)

    attempt.refresh_from_db()
    user.refresh_from_db()
    assert attempt.state == AttemptState.SUCCEEDED  # committed before its scripts ran
    assert slapd.can_bind(user.distinguished_name, user.get_password())
    assert ScriptRun.objects.get(attempt=attempt).state == RunState.RUNNING
    services.reconcile_stale()  # the dispatcher's next look settles the run
    client.force_login(bob)
    page = client.get(attempt.get_absolute_url()).content.decode()
    assert "Outcome unknown" in page
    attempt.refresh_from_db()
    user.refresh_from_db()
    assert attempt.scripts_state == ScriptsState.UNKNOWN
    assert (
        user.rotation_error == "rotated; script record.py outcome unknown (the worker stopped while it ran)"
    )

    (out_dir / "record.py.json").unlink(missing_ok=True)
    client.post(reverse("scripts:rerun", args=[attempt.pk]))
    attempt.refresh_from_db()
    user.refresh_from_db()
    assert attempt.scripts_state == ScriptsState.SUCCEEDED, attempt.scripts_message
    assert received(out_dir)["newPassword"] == user.get_password()
    assert slapd.can_bind(user.distinguished_name, received(out_dir)["newPassword"])
    assert user.rotation_error == ""


@pytest.mark.django_db(transaction=True)
def test_end_to_end_a_qcluster_worker_killed_during_a_script_then_run_again_on_a_fresh_cluster(
    client, slapd, unique_name, scripts_dir, out_dir, tmp_path, monkeypatch
):
    from django_q.conf import Conf

    from tests.conftest import make_persona
    from tests.pgserver import Qcluster, wait_for
    from tests.test_faults import sqlite_env

    monkeypatch.setattr(Conf, "SYNC", False)  # queue to the real workers below
    bob = make_persona("bob")
    env = make_env(slapd, unique_name)
    user = env.account(unique_name("e2e"))
    attach(user, recorder(scripts_dir, out_dir))
    attempt = services.request_rotation(user)
    runs = ScriptRun.objects.filter(attempt=attempt)
    faulty = sqlite_env(
        tmp_path, PAMROTATE_FAULT_POINT="during_scripts", PAMROTATE_SCRIPTS_DIR=str(scripts_dir)
    )
    with Qcluster(faulty, tmp_path / "faulty.log") as cluster:
        # The worker dies right after the script started; its dispatcher thread then finds the run.
        wait_for(
            lambda: runs.filter(state=RunState.UNKNOWN).exists(), 60, message=lambda: cluster.output()[-3000:]
        )
        assert "reincarnated worker" in cluster.output()
    attempt.refresh_from_db()
    assert attempt.state == AttemptState.SUCCEEDED and attempt.scripts_state == ScriptsState.UNKNOWN
    (out_dir / "record.py.json").unlink(missing_ok=True)

    fresh = sqlite_env(tmp_path, PAMROTATE_SCRIPTS_DIR=str(scripts_dir))
    with Qcluster(fresh, tmp_path / "fresh.log") as cluster:
        client.force_login(bob)
        assert client.post(reverse("scripts:rerun", args=[attempt.pk])).status_code == 302
        wait_for(
            lambda: runs.filter(round=2, state=RunState.SUCCEEDED).exists(),
            60,
            message=lambda: cluster.output()[-3000:],
        )
    attempt.refresh_from_db()
    user.refresh_from_db()
    assert attempt.scripts_state == ScriptsState.SUCCEEDED
    assert received(out_dir)["newPassword"] == user.get_password()
    assert slapd.can_bind(user.distinguished_name, user.get_password())


def test_keeper_import_maps_scripts_only_and_refuses_iam_user(db, scripts_dir):
    import json

    from records import import_report, imports, keeper, keeper_export

    write_script(scripts_dir, "push.sh", "#!/bin/bash\n")
    document = {
        "project": "Scripts only",
        "pam_data": {
            "users": [
                {
                    "type": "pamUser",
                    "title": "saas",
                    "login": "saas-admin",
                    "rotation_settings": {"rotation": "scripts_only", "enabled": "on"},
                    "scripts": ["push.sh"],
                }
            ]
        },
    }
    report = imports.import_projects(keeper.parse(json.dumps(document)))
    assert report.ok, report.lines()
    user = PamUser.objects.get(title="saas")
    assert user.rotation_type == RotationType.SCRIPTS_ONLY and user.resource is None and user.rotation_enabled
    assert not user.rotation_blocked_reason
    exported = keeper_export.export_project(user.configuration)["pam_data"]["users"][0]
    assert exported["rotation_settings"]["rotation"] == "scripts_only"
    assert exported["scripts"][0]["file"] == "push.sh"

    document["pam_data"]["users"][0].update(title="cloud", rotation_settings={"rotation": "iam_user"})
    with pytest.raises(import_report.ImportRejected) as rejected:
        imports.import_projects(keeper.parse(json.dumps(document)))
    assert "iam_user" in str(rejected.value.report.rejected[0])
