"""The task broker: django-q2's ORM broker, whose pusher says why it cannot pull and stops the cluster.

django-q2's pusher dies on a failed pull and its sentinel starts another, forever ("reincarnated
pusher"), so a worker that cannot reach its database looked alive. Here a failed pull is retried
every second; after ``BROKER_FAILURE_SECONDS`` of failures the pusher logs one error naming the
cause and signals the qcluster main process (rotation/worker.py), which stops the cluster and
exits with ``EXIT_BROKER_UNREACHABLE``.
"""

from __future__ import annotations

import logging
import os
import signal
import time

from django.conf import settings
from django.db import connections
from django_q.brokers.orm import ORM
from django_q.conf import Conf

log = logging.getLogger(__name__)

EXIT_BROKER_UNREACHABLE = 3
MAIN_PID_ENV = "PAMROTATE_QCLUSTER_PID"  # set by the qcluster main process for its children


class Broker(ORM):
    """django-q2's ORM broker, whose pull failures are retried, then stop the cluster with one error.

    django-q2's pusher dies on a failed pull and its sentinel starts another, forever
    ("reincarnated pusher"), so a worker that cannot reach its database looks alive.
    """

    failing_since: float | None = None
    gave_up = False

    def dequeue(self):
        try:
            tasks = super().dequeue()
        except Exception as exc:  # any error of the database under the broker
            self._pull_failed(exc)
            return None
        self.failing_since = None
        return tasks

    def _pull_failed(self, exc: Exception) -> None:
        cause = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        limit = settings.BROKER_FAILURE_SECONDS
        now = time.monotonic()
        connections[Conf.ORM].close()  # the next pull opens a fresh one
        if self.failing_since is None:
            self.failing_since = now
            log.warning("cannot pull tasks from the broker (%s); retrying for up to %s s", cause, limit)
        elif now - self.failing_since >= limit and not self.gave_up:
            self.gave_up = True
            log.error(
                "the worker of gateway %s cannot reach its broker (database %r) for %d s: %s; "
                "stopping the cluster (exit status %s)",
                Conf.CLUSTER_NAME,
                Conf.ORM,
                now - self.failing_since,
                cause,
                EXIT_BROKER_UNREACHABLE,
            )
            main_pid = os.environ.get(MAIN_PID_ENV)
            if not main_pid:
                raise exc
            os.kill(int(main_pid), signal.SIGUSR1)
        time.sleep(1)
