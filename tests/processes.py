"""Child-process helpers shared by the test servers: free ports, dying with the parent, stopping."""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess

PR_SET_PDEATHSIG = 1


def die_with_parent(death_signal: int = signal.SIGTERM) -> None:
    """preexec_fn: have the kernel signal this child when the test process dies."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, death_signal, 0, 0, 0)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    """Stop a child we started by its PID: the signal, then a kill if it does not exit in time."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
