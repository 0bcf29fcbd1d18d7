"""What ops does at each dispatcher tick: stream to the SIEM, fan audit events out to webhooks, tally rotations, send notices."""

from __future__ import annotations

import datetime as dt
import logging

from rotation import hooks

log = logging.getLogger(__name__)


def on_tick(now: dt.datetime) -> None:
    """Run each operations job once; one failing never stops the others."""
    from ops import notices, siem, tally, webhooks

    for job in (siem.pump, webhooks.fan_out, webhooks.release_retries, tally.update, notices.send_due):
        try:
            job(now)
        except Exception as exc:  # the dispatcher must keep ticking through a database or network outage
            log.warning("ops %s: %s", job.__qualname__, type(exc).__name__)


def register() -> None:
    hooks.register_tick(on_tick)
