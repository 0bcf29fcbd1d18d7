"""Run the web server and the django-q2 worker together; Ctrl-C (or SIGTERM) stops both.

A worker that stops on an error (qcluster exits 3 when it cannot reach its broker) is named and
started again; the web server keeps running, and its pages and /healthz say what the worker did.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from django.core.management.base import BaseCommand

RESTART_DELAY = 5  # seconds before a worker that stopped on an error is started again


def supervise(commands: list[list[str]], on_start=None, restart: tuple[int, ...] = ()) -> int:
    """Start each command, wait until one exits or we are told to stop, then stop them all.

    A command whose index is in ``restart`` (the worker) that exits with an error is said so and
    started again after RESTART_DELAY seconds (qcluster exits 3 when it cannot reach its broker);
    any other exit stops everything.
    """
    stop = {"asked": False}

    def ask_stop(signum, frame):
        stop["asked"] = True

    previous = {sig: signal.signal(sig, ask_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    procs = [subprocess.Popen(command) for command in commands]
    try:
        if on_start:
            on_start()
        while not stop["asked"]:
            ended = [(index, p.returncode) for index, p in enumerate(procs) if p.poll() is not None]
            if any(index not in restart or not code for index, code in ended):
                break
            for index, code in ended:
                name = " ".join(commands[index][1:])
                sys.stderr.write(
                    f"pamrotate: `{name}` stopped with exit status {code} (its log above says why); "
                    f"starting it again in {RESTART_DELAY} s\n"
                )
                time.sleep(RESTART_DELAY)
                if not stop["asked"]:
                    procs[index] = subprocess.Popen(commands[index])
            time.sleep(0.3)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30  # qcluster stops within its grace time (20 s)
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return max((p.returncode or 0) for p in procs) if not stop["asked"] else 0


class Command(BaseCommand):
    help = "Run the web server (runserver) and the worker (qcluster) together until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", default="8000")

    def handle(self, *args, **options):
        address = f"{options['host']}:{options['port']}"
        code = supervise(
            [
                [sys.executable, "manage.py", "qcluster"],
                [sys.executable, "manage.py", "runserver", address, "--noreload"],
            ],
            on_start=lambda: self.stdout.write(
                f"pamrotate on http://{address}/ — Ctrl-C stops the web server and the worker."
            ),
            restart=(0,),
        )
        if code:
            sys.exit(code)
