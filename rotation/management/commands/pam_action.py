"""Keeper Commander's `pam action rotate`: rotate a user, a directory's users or a configuration's.

Without ``--wait`` the attempts go to the gateway's workers. With ``--wait`` the command follows
them to the end; when no django-q2 cluster is running (``Stat.get_all()`` is empty, or tasks run
in sync mode) or ``--local`` is given, it runs the rotations itself, in this process.
"""

from __future__ import annotations

import datetime as dt
import time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.cli import Acting
from accounts.policy import Action
from rotation import hooks, services
from rotation.management.commands.pam_rotation import add_target_arguments, select_users
from rotation.models import ACTIVE_STATES, AttemptState, RotationAttempt, ScriptsState, Trigger

OK_STATES = (AttemptState.SUCCEEDED, AttemptState.RECONCILED)
# An unknown outcome is reconciled later by the workers; waiting here would not settle it.
DONE_STATES = (*OK_STATES, AttemptState.FAILED, AttemptState.REFUSED, AttemptState.UNKNOWN)


def worker_running() -> bool:
    """Return whether a django-q2 cluster reports itself alive (sync mode counts as none)."""
    from django_q.conf import Conf
    from django_q.status import Stat

    if Conf.SYNC:
        return False
    try:
        return bool(Stat.get_all())
    except Exception:  # a broker we cannot ask counts as no worker
        return False


class Command(BaseCommand):
    help = "Rotate passwords now (Keeper Commander's `pam action rotate`)."

    def add_arguments(self, parser):
        verbs = parser.add_subparsers(dest="verb", required=True, title="verbs")
        rotate = verbs.add_parser(
            "rotate", help="Rotate a user, every user of a directory or of a configuration."
        )
        add_target_arguments(rotate)
        rotate.add_argument("--dry-run", action="store_true", help="List what would rotate; rotate nothing.")
        rotate.add_argument(
            "--wait", action="store_true", help="Wait for the rotations and report each result."
        )
        rotate.add_argument(
            "--local",
            action="store_true",
            help="Run the rotations in this process, not on the gateway's workers.",
        )
        rotate.add_argument(
            "--timeout", type=int, default=600, metavar="SECONDS", help="How long --wait waits (default 600)."
        )

    def handle(self, *args, **options):
        acting = Acting.from_options(options)
        acting.require(Action.ROTATE)  # no Operator role anywhere: refused before anything is looked up
        description, users = select_users(options, rotating=True, acting=acting)
        if not users:
            raise CommandError(f"the {description} has no accounts to rotate")
        for user in users:  # all or nothing: a refusal queues none
            acting.require(Action.ROTATE, user)
        if options["dry_run"]:
            return self.dry_run(users)
        running = options["local"] or worker_running()
        local = options["local"] or (options["wait"] and not running)
        if not local and not running:
            self.stderr.write(
                "No worker (qcluster) seems to be running: the rotations wait in the queue until one starts. "
                "Use --wait to run them here."
            )
        attempts = [
            services.request_rotation(
                user,
                trigger=Trigger.ON_DEMAND,
                actor=acting.actor.renamed(acting.name),
                enqueue=not local,
            )
            for user in users
        ]
        queued = [a for a in attempts if a.state == AttemptState.QUEUED]
        for attempt in attempts:
            if attempt.state == AttemptState.REFUSED:
                self.stderr.write(f"{attempt.user.title}: not rotated: {attempt.error_message}")
        if local:
            self.run_here(queued)
        elif options["wait"]:
            self.wait(queued, options["timeout"])
        else:
            for attempt in queued:
                self.stdout.write(f"{attempt.user.title}: rotation #{attempt.pk} queued")
        return self.summarise(attempts, options["wait"] or local)

    def dry_run(self, users) -> None:
        for user in users:
            reason = user.rotation_blocked_reason
            busy = user.attempts.filter(state__in=ACTIVE_STATES).first()
            if reason:
                self.stdout.write(f"would not rotate {user.title}: {reason}")
            elif busy is not None:
                self.stdout.write(f"would not rotate {user.title}: already rotating (attempt #{busy.pk})")
            else:
                self.stdout.write(f"would rotate {user.title} ({user.resource})")
        self.stdout.write("Dry run: nothing was rotated.")

    def run_here(self, queued: list[RotationAttempt]) -> None:
        for number, attempt in enumerate(queued):
            self.progress(number, len(queued))
            services.run_attempt(attempt.pk)
        self.progress(len(queued), len(queued), end=True)

    def wait(self, queued: list[RotationAttempt], timeout: int) -> None:
        deadline = timezone.now() + dt.timedelta(seconds=timeout)
        ids = [attempt.pk for attempt in queued]
        has_scripts: dict[int, bool] = {}
        while True:
            done = self.settled(ids, has_scripts)
            self.progress(done, len(ids), end=done == len(ids))
            if done == len(ids):
                return
            if timezone.now() > deadline:
                self.progress(done, len(ids), end=True)
                raise CommandError(
                    f"gave up waiting after {timeout} s: {len(ids) - done} rotation(s) are still queued or "
                    "running; is the gateway's qcluster running?"
                )
            time.sleep(0.5)

    def settled(self, ids: list[int], has_scripts: dict[int, bool]) -> int:
        """Count the attempts that ended, post-rotation scripts included (they run after the commit)."""
        ended = RotationAttempt.objects.filter(pk__in=ids, state__in=DONE_STATES).select_related("user")
        count = 0
        for attempt in ended.exclude(scripts_state=ScriptsState.RUNNING):
            if attempt.state in OK_STATES and not attempt.scripts_state:
                if attempt.user_id not in has_scripts:
                    wanted = hooks.accounts_with_after_commit_work([attempt.user])
                    has_scripts[attempt.user_id] = wanted is None or attempt.user_id in wanted
                if has_scripts[attempt.user_id]:
                    continue  # committed; its scripts start in a moment
            count += 1
        return count

    def progress(self, done: int, total: int, end: bool = False) -> None:
        """Draw a text progress bar on stderr."""
        width = 30
        filled = width * done // total if total else width
        self.stderr.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", ending="\n" if end else ""
        )
        self.stderr.flush()

    def summarise(self, attempts: list[RotationAttempt], finished: bool) -> None:
        failed = []
        for attempt in attempts:
            attempt.refresh_from_db()
            if attempt.state == AttemptState.QUEUED and not finished:
                continue
            if attempt.state in OK_STATES and attempt.scripts_state in (
                ScriptsState.FAILED,
                ScriptsState.UNKNOWN,
            ):
                failed.append(attempt)
                self.stderr.write(f"{attempt.user.title}: {attempt.scripts_message} (attempt #{attempt.pk})")
            elif attempt.state in OK_STATES:
                self.stdout.write(f"{attempt.user.title}: rotated (attempt #{attempt.pk})")
            else:
                failed.append(attempt)
                if attempt.state != AttemptState.REFUSED:
                    self.stderr.write(
                        f"{attempt.user.title}: {attempt.get_state_display().lower()}: {attempt.error_message}"
                    )
        if failed:
            raise CommandError(f"{len(failed)} of {len(attempts)} rotation(s) did not succeed")
        if finished:
            self.stdout.write(self.style.SUCCESS(f"{len(attempts)} rotation(s) succeeded."))
