"""Run the web server and the django-q2 worker together; Ctrl-C (or SIGTERM) stops both."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from django.core.management.base import BaseCommand


def supervise(commands: list[list[str]], on_start=None) -> int:
    """Start each command, wait until one exits or we are told to stop, then stop them all."""
    stop = {"asked": False}

    def ask_stop(signum, frame):
        stop["asked"] = True

    previous = {sig: signal.signal(sig, ask_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    procs = [subprocess.Popen(command) for command in commands]
    try:
        if on_start:
            on_start()
        while not stop["asked"] and all(p.poll() is None for p in procs):
            time.sleep(0.3)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
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
        )
        if code:
            sys.exit(code)
