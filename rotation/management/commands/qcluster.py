"""``manage.py qcluster``: django-q2's cluster, started safely, with the dispatcher (rotation/worker.py)."""

from __future__ import annotations

import os
import sys

from django_q.management.commands.qcluster import Command as DjangoQCommand

from rotation import worker


class Command(DjangoQCommand):
    help = (
        "Start this host's worker cluster (django-q2) with no database connection open across its forks, "
        "and the dispatcher in its main process. SIGTERM stops it within PAMROTATE_WORKER_STOP_GRACE_SECONDS; "
        "an unreachable broker stops it with exit status 3."
    )

    def handle(self, *args, **options):
        if options.get("run_once"):
            return super().handle(*args, **options)
        if options.get("cluster_name"):
            os.environ["Q_CLUSTER_NAME"] = options["cluster_name"]
        code = worker.run(dispatch=os.environ.get("PAMROTATE_DISPATCHER", "on") != "off")
        if code:
            sys.exit(code)
