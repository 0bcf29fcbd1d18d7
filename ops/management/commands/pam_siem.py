"""manage.py pam_siem status|run: the SIEM stream's cursor, or a sender of its own outside the qclusters."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Max

from audit.models import AuditEvent
from ops import conf, siem, stream
from ops.siem import Collector, SiemError


class Command(BaseCommand):
    help = "Show the SIEM stream's position, or run a sender (one at a time holds the lease)."

    def add_arguments(self, parser):
        verbs = parser.add_subparsers(dest="verb", required=True)
        verbs.add_parser("status", help="where the stream stands")
        run = verbs.add_parser("run", help="send until stopped (Ctrl-C), or once with --once")
        run.add_argument("--once", action="store_true", help="send what is waiting and exit")

    def handle(self, *args, verb: str, once: bool = False, **options):
        url = conf.siem_url()
        if not url:
            raise CommandError("PAMROTATE_SIEM_URL is not set (tcp://host:port or tls://host:port)")
        try:
            Collector.parse(url)
        except SiemError as exc:
            raise CommandError(str(exc)) from None
        if verb == "status":
            cursor = stream.cursor(siem.NAME)
            last = AuditEvent.objects.aggregate(last=Max("id"))["last"] or 0
            self.stdout.write(
                f"collector {url}; sent up to event {cursor.last_event_id} of {last} "
                f"({max(0, last - cursor.last_event_id)} waiting); {cursor.sent} sent, {cursor.failures} failed sends"
                + (f"; last error: {cursor.last_error}" if cursor.last_error else "")
            )
            return
        while True:
            sent = siem.pump(force=once)
            if once:
                self.stdout.write(f"sent {sent} event(s)")
                return
            time.sleep(0.2 if sent else 1.0)
