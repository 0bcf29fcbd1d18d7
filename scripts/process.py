"""Process supervision, the worker's side: start a script under ``supervise.py``, feed it, collect its output.

Every script runs under its own supervisor (``scripts/supervise.py``, a fresh interpreter holding
none of the worker's memory or environment): the supervisor runs it as ``PAMROTATE_SCRIPT_USER``
in a directory that user owns, kills it at the timeout, and kills everything it started (a
``setsid`` child or a double-forked daemon included) when it ends, whichever way it ends.

``PAMROTATE_SCRIPT_USER`` (``useradd --system --no-create-home pamrotate-script``): in production
mode a script does not run without it (the run fails saying so); in dev mode a script runs as the
worker's user with a warning in the log and in the run's reason. The worker must be able to
switch to it: run as root, or hold CAP_SETUID, CAP_SETGID and CAP_KILL (systemd
``AmbientCapabilities=``); the script itself keeps none of them.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import secrets
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from rotation.faults import fault_point
from scripts.models import OUTPUT_LIMIT

log = logging.getLogger(__name__)

SUPERVISOR = Path(__file__).with_name("supervise.py")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
# How long past the script's own timeout the worker waits for its supervisor before killing it.
SUPERVISOR_GRACE = 10.0
CAP_KILL, CAP_SETGID, CAP_SETUID = 5, 6, 7
CREATE_USER = "useradd --system --no-create-home pamrotate-script"


class Refused(Exception):
    """The script must not run here as configured; the message says why and what to do."""


@dataclass
class Execution:
    """What one script did: exit code (None when killed or not started), output, error."""

    exit_code: int | None
    timed_out: bool
    stdout: bytes
    stderr: bytes
    error: str = ""
    warning: str = ""


def configured_user() -> str:
    """Return the configured script user's name ("" when none is set)."""
    return settings.SCRIPT_USER.strip()


def script_path() -> str:
    """Return the PATH a script runs with: the system's for the script user (the worker's may hold a venv it cannot enter)."""
    if configured_user():
        return DEFAULT_PATH
    return os.environ.get("PATH") or DEFAULT_PATH


def _can_switch_users() -> bool:
    if os.geteuid() == 0:
        return True
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return False
    effective = next(
        (int(line.split()[1], 16) for line in status.splitlines() if line.startswith("CapEff:")), 0
    )
    return all(effective >> cap & 1 for cap in (CAP_KILL, CAP_SETGID, CAP_SETUID))


def _exposed() -> list[str]:
    """Return the vault's files another local user could read (the script user must not)."""
    found = []
    for path in (Path(settings.DATA_DIR), Path(settings.ENCRYPTION_KEY_FILE or settings.DATA_DIR)):
        try:
            mode = path.stat().st_mode
        except OSError:
            continue
        if mode & 0o007:
            found.append(f"{path} (mode {mode & 0o777:04o}: chmod o-rwx {path})")
    return found


def script_user() -> tuple[str, str]:
    """Return (the user scripts run as, "" for the worker's own; a warning) or raise Refused."""
    name = configured_user()
    if not name:
        if settings.PRODUCTION:
            raise Refused(
                "PAMROTATE_SCRIPT_USER is not set: in production scripts run only as their own "
                f"unprivileged user (create one: {CREATE_USER}; then set PAMROTATE_SCRIPT_USER=pamrotate-script)"
            )
        warning = (
            "PAMROTATE_SCRIPT_USER is not set: this script ran as the worker's own user, able to read "
            f"what the worker can (dev mode only; create one: {CREATE_USER})"
        )
        log.warning("%s", warning)
        return "", warning
    try:
        account = pwd.getpwnam(name)
    except KeyError:
        raise Refused(f"the script user {name!r} does not exist (create it: {CREATE_USER})") from None
    if account.pw_uid == 0 or account.pw_uid == os.geteuid():
        raise Refused(f"the script user {name!r} must be another user than root and than the worker's")
    if not _can_switch_users():
        raise Refused(
            f"this worker cannot run scripts as {name!r}: run it as root or give it CAP_SETUID, "
            "CAP_SETGID and CAP_KILL (systemd AmbientCapabilities=)"
        )
    exposed = _exposed()
    if exposed:
        raise Refused("the script user could read the vault's files: " + "; ".join(exposed))
    return name, ""


def execute(file: Path, command: str, stdin_line: str, timeout: float) -> Execution:
    """Run a checked script file (with ``command`` as its interpreter, or itself) under a supervisor."""
    try:
        user, warning = script_user()
    except Refused as exc:
        return Execution(None, False, b"", b"", error=f"refused: {exc}")
    status_r, status_w = os.pipe()
    config = {
        "file": str(file),
        "command": command,
        "user": user,
        "workdir": os.path.join(tempfile.gettempdir(), f"pamrotate-script-{secrets.token_hex(8)}"),
        "path": script_path(),
        "lang": os.environ.get("LANG") or "C.UTF-8",
        "timeout": timeout,
        "status_fd": status_w,
    }
    try:
        process = subprocess.Popen(  # noqa: S603 - our own supervisor; the script's argv has no shell
            [sys.executable, "-I", "-S", "-B", str(SUPERVISOR), json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={"PATH": config["path"], "LANG": config["lang"]},
            cwd="/",
            start_new_session=True,
            close_fds=True,
            pass_fds=(status_w,),
        )
    except OSError as exc:
        os.close(status_r)
        return Execution(None, False, b"", b"", error=f"could not start: {exc.strerror}")
    finally:
        os.close(status_w)
    with os.fdopen(status_r, "rb") as status:
        fault_point("during_scripts")
        stdout, stderr, finished = _collect(process, (stdin_line + "\n").encode(), timeout + SUPERVISOR_GRACE)
        report = _report(status) if finished else {}
    return _execution(report, stdout, stderr, warning)


def _report(status) -> dict:
    try:
        return json.loads(status.readline() or b"{}")
    except ValueError:
        return {}


def _execution(report: dict, stdout: bytes, stderr: bytes, warning: str) -> Execution:
    if not report:
        return Execution(None, True, stdout, stderr, error="", warning=warning)
    code, error = report.get("exit_code"), report.get("error") or ""
    if code is not None and code < 0:
        code, error = None, error or f"killed by signal {-code}"
    return Execution(code, bool(report.get("timed_out")), stdout, stderr, error=error, warning=warning)


def _collect(process: subprocess.Popen, data: bytes, limit: float) -> tuple[bytes, bytes, bool]:
    """Feed stdin, read both outputs until the supervisor closed them; return (stdout, stderr, finished)."""
    deadline = time.monotonic() + limit
    keep = OUTPUT_LIMIT + 4 * len(data) + 256  # past the limit, enough to mask any encoding cut by it
    buffers = {process.stdout: bytearray(), process.stderr: bytearray()}
    selector = selectors.DefaultSelector()
    for stream in (process.stdin, process.stdout, process.stderr):
        os.set_blocking(stream.fileno(), False)
    selector.register(process.stdin, selectors.EVENT_WRITE)
    selector.register(process.stdout, selectors.EVENT_READ)
    selector.register(process.stderr, selectors.EVENT_READ)
    pending = memoryview(data)
    finished = True
    while selector.get_map():
        left = deadline - time.monotonic()
        if left <= 0:
            finished = False
            break
        for key, _events in selector.select(min(0.5, left)):
            stream = key.fileobj
            if stream is process.stdin:
                try:
                    pending = pending[os.write(stream.fileno(), pending) :]
                except BlockingIOError:
                    continue
                except OSError:  # it exited or closed stdin without reading it all
                    pending = pending[:0]
                if not pending:
                    selector.unregister(stream)
                    stream.close()
                continue
            try:
                chunk = os.read(stream.fileno(), 65536)
            except BlockingIOError:
                continue
            if not chunk:
                selector.unregister(stream)
                continue
            room = keep - len(buffers[stream])
            if room > 0:
                buffers[stream] += chunk[:room]  # the rest is read and dropped, so the script never blocks
    selector.close()
    if not finished:  # the supervisor itself is stuck: a last resort, it cannot clean up
        log.error("a script supervisor (pid %s) did not finish; killed", process.pid)
        _kill(process)
    try:
        process.wait(SUPERVISOR_GRACE)
    except subprocess.TimeoutExpired:
        _kill(process)
        process.wait()
        finished = False
    for stream in (process.stdin, process.stdout, process.stderr):
        if not stream.closed:
            stream.close()
    return bytes(buffers[process.stdout]), bytes(buffers[process.stderr]), finished


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
