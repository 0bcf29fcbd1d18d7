"""A crash on purpose at a named step of the rotation protocol, for the fault-injection tests."""

from __future__ import annotations

import os
import random
import signal
import time


def fault_point(name: str) -> None:
    """Kill this process at a named step when PAMROTATE_FAULT_POINT says so (crash tests).

    PAMROTATE_FAULT_JITTER_MS=<n> waits a random 0..n ms first, so kills land at varied moments.
    """
    if os.environ.get("PAMROTATE_FAULT_POINT") == name:
        jitter_ms = int(os.environ.get("PAMROTATE_FAULT_JITTER_MS") or 0)
        if jitter_ms > 0:
            time.sleep(random.uniform(0, jitter_ms) / 1000)  # noqa: S311 - timing, not a secret
        os.kill(os.getpid(), signal.SIGKILL)
