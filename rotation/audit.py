"""Moved: the audit log is the ``audit`` app (audit.events); this module re-exports it while callers move."""

from __future__ import annotations

from audit.events import *  # noqa: F403
from records.filters import configurations_and_directories  # noqa: F401
from rotation.retention import purge  # noqa: F401
