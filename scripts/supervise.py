"""Supervise one post-rotation script: run it as the script user, end everything it started.

This file is a program of its own (standard library only), started by the worker as
``python -I -S supervise.py CONFIG`` so that it holds none of the worker's memory (key ring,
settings, database connections) and none of its environment. CONFIG is JSON (no secret):
``file`` (the checked script), ``command`` (the interpreter's absolute path, or ""), ``user``
(the script user, or "" to stay the worker's user), ``workdir`` (a path to create for the run),
``path``/``lang`` (the script's PATH and LANG), ``timeout`` (seconds) and ``status_fd``.

The script's stdin, stdout and stderr are this process's: the worker writes the payload line and
reads the output; this process closes its own copies so the worker sees end-of-file when the last
holder is gone. It reports ``{"exit_code", "timed_out", "error"}`` as one JSON line on status_fd.

Why a child subreaper: ``PR_SET_CHILD_SUBREAPER`` makes every orphan of the script's tree (a
``setsid`` child, a double-forked daemon) this process's child instead of init's, so "no children
left" here means "no descendant left". A process group or session can be left with ``setsid``;
the parent-child tree cannot, and this works without a cgroup hierarchy to delegate (cgroup v1
hosts, containers). The supervisor runs as the worker's user (not the script user), so a script
can neither signal nor trace it.
"""

from __future__ import annotations

import ctypes
import json
import os
import pwd
import select
import signal
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
CHILD_FAILED = 127  # the child could not start the script: it says why on the status pipe

_libc = ctypes.CDLL(None, use_errno=True)


class Stopped(Exception):
    """The worker (or its death) asked this supervisor to end the run now."""


def _prctl(option: int, arg: int = 0, arg3: int = 0) -> None:
    if _libc.prctl(option, ctypes.c_ulong(arg), ctypes.c_ulong(arg3), 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def descendants(root: int) -> list[int]:
    """Return every process below ``root`` in the parent-child tree (read from /proc)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(name))
    found, todo = [], [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            found.append(pid)
            todo.append(pid)
    return found


def kill_everything() -> None:
    """SIGKILL every descendant and reap them until none is left (orphans come back here)."""
    me = os.getpid()
    while True:
        for pid in descendants(me):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _drop_to(user: str) -> pwd.struct_passwd:
    """Become the script user for good: no groups, no capabilities, no setuid gain."""
    account = pwd.getpwnam(user)
    if account.pw_uid == 0:
        raise PermissionError("the script user must not be root")
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    os.setgroups([])
    os.setresgid(account.pw_gid, account.pw_gid, account.pw_gid)
    os.setresuid(account.pw_uid, account.pw_uid, account.pw_uid)
    return account


def _child(config: dict, script_fd: int, status_fd: int) -> None:
    """In the forked child: drop privileges, copy the script into its own directory, exec it.

    ``status_fd`` is close-on-exec: it reaches the supervisor with a reason only when exec failed.
    """
    try:
        os.close(config["status_fd"])  # the worker's status pipe is not the script's
        os.setsid()
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        if config["user"]:
            _drop_to(config["user"])
        workdir = config["workdir"]
        os.mkdir(workdir, 0o700)  # owned by the script user; the worker's data directory is not readable
        name = os.path.join(workdir, os.path.basename(config["file"]))
        copy = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o700)
        while chunk := os.read(script_fd, 65536):
            os.write(copy, chunk)
        os.close(copy)
        os.close(script_fd)
        os.chdir(workdir)
        env = {"PATH": config["path"], "HOME": workdir, "LANG": config["lang"], "TMPDIR": workdir}
        argv = [config["command"], name] if config["command"] else [name]
        os.execve(argv[0], argv, env)  # noqa: S606 - argv of a checked file, no shell by design
    except BaseException as exc:  # noqa: BLE001 - whatever stops it is reported, then the child exits
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        try:
            os.write(status_fd, json.dumps({"child_error": reason}).encode() + b"\n")
        finally:
            os._exit(CHILD_FAILED)


def _remove(config: dict) -> None:
    """Remove the run's directory as the user that owns it (the worker may not be allowed to)."""
    pid = os.fork()
    if pid == 0:
        try:
            if config["user"]:
                _drop_to(config["user"])
            for root, dirs, files in os.walk(config["workdir"], topdown=False):
                for name in files:
                    os.unlink(os.path.join(root, name))
                for name in dirs:
                    path = os.path.join(root, name)
                    os.unlink(path) if os.path.islink(path) else os.rmdir(path)
            os.rmdir(config["workdir"])
        except OSError:
            pass
        os._exit(0)
    os.waitpid(pid, 0)


def _stop(signum, frame):
    raise Stopped


def _wait(pid: int, timeout: float) -> tuple[int | None, bool]:
    """Wait for the script; return (its exit code, None at the timeout; whether it timed out)."""
    deadline = time.monotonic() + timeout
    pidfd = os.pidfd_open(pid)
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None, True
            if select.select([pidfd], [], [], left)[0]:
                _, status = os.waitpid(pid, 0)
                return os.waitstatus_to_exitcode(status), False  # -N: killed by signal N
    finally:
        os.close(pidfd)


def main(argv: list[str]) -> int:
    config = json.loads(argv[1])
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)  # the worker died: end the run (the signal runs _stop)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    report = {"exit_code": None, "timed_out": False, "error": ""}
    try:
        report.update(_run(config))
    except Stopped:
        report["error"] = "stopped by the worker"
    except OSError as exc:
        report["error"] = f"could not start: {exc.strerror or exc}"
    except Exception as exc:  # noqa: BLE001 - reported as the run's reason; everything is still killed
        report["error"] = f"the script's supervisor failed ({type(exc).__name__})"
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        kill_everything()
        _remove(config)
        os.write(config["status_fd"], json.dumps(report).encode() + b"\n")
    return 0


def _run(config: dict) -> dict:
    """Start the script in a child, wait for it up to the timeout, then kill everything it left."""
    script_fd = os.open(config["file"], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    os.set_inheritable(script_fd, True)
    failed_r, failed_w = os.pipe()  # close-on-exec both
    pid = os.fork()
    if pid == 0:
        os.close(failed_r)
        _child(config, script_fd, failed_w)
    os.close(script_fd)
    os.close(failed_w)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # the script holds the worker's pipes; this process lets go of its copies
        os.dup2(devnull, fd)
    try:
        exit_code, timed_out = _wait(pid, config["timeout"])
    finally:
        kill_everything()  # at the timeout, at a stop and at a normal exit alike
    failed = os.read(failed_r, 4096)
    if failed:
        return {"exit_code": None, "error": "could not start: " + json.loads(failed)["child_error"]}
    return {"exit_code": exit_code, "timed_out": timed_out}


if __name__ == "__main__":
    sys.exit(main(sys.argv))
