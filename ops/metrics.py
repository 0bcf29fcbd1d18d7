"""Prometheus metrics, computed from the database at each scrape (a custom collector, no counters in memory).

Why from the database: several gunicorn workers answer /metrics and several qclusters (one per
gateway, on other hosts too) do the work. In-process counters would give each scrape the view of
whichever worker answered, and prometheus_client's multiprocess mode covers one host's processes
only. The database is what every process shares, so every scrape agrees; each figure is one
grouped, indexed query, and the rotation counters are tallies kept from the audit log
(``ops.tally``) so a scrape reads a few rows, not every attempt (bench/metrics_scrape.py).
"""

from __future__ import annotations

import datetime as dt

from django.apps import apps
from django.db.models import Count, Max, Min, Q, Sum
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from audit.models import AuditEvent
from ops import conf
from ops import tally as tally_module
from ops.models import DeliveryState, RotationTally, StreamCursor, WebhookEndpoint
from records.models import PamConfiguration, PamUser, RotationStatus
from rotation.models import ACTIVE_STATES, OK_STATES, AttemptState, Heartbeat, RotationAttempt

ACCOUNT_STATES = ("ok", "failed", "overdue", "drifted", "disabled", "locked", "expired", "checked_out")


def _seconds(now: dt.datetime, moment: dt.datetime | None) -> float:
    return max(0.0, (now - moment).total_seconds()) if moment else 0.0


class DatabaseCollector(Collector):
    """Read every pamrotate metric from the database when Prometheus scrapes."""

    def collect(self):
        now = timezone.now()
        tally_module.update(now)  # catch up what no tick counted yet (bounded)
        self.tallies = list(RotationTally.objects.all())
        yield from self.rotations()
        yield self.durations()
        yield self.accounts(now)
        yield from self.gateways(now)
        yield self.last_success(now)
        yield from self.security_events()
        yield from self.deliveries()

    def rotations(self):
        family = CounterMetricFamily(
            "pamrotate_rotations",
            "Finished rotation attempts by configuration, trigger and outcome.",
            labels=["configuration", "trigger", "outcome"],
        )
        for tally in self.tallies:
            family.add_metric([tally.configuration_title, tally.trigger, tally.outcome], tally.count)
        yield family

    def durations(self) -> HistogramMetricFamily:
        """Return the rotation-duration histogram per configuration (the tallies' bucket counts summed)."""
        family = HistogramMetricFamily(
            "pamrotate_rotation_duration_seconds",
            "Time from a worker starting an attempt to its end, finished attempts.",
            labels=["configuration"],
        )
        series: dict[str, list] = {}
        for tally in self.tallies:
            counts, total, seconds = series.setdefault(
                tally.configuration_title, [[0] * len(tally_module.DURATION_BUCKETS), 0, 0.0]
            )
            series[tally.configuration_title] = [
                [old + new for old, new in zip(counts, tally.buckets, strict=True)],
                total + tally.timed,
                seconds + tally.seconds,
            ]
        for title, (counts, total, seconds) in sorted(series.items()):
            buckets = [
                (str(float(bound)), n) for bound, n in zip(tally_module.DURATION_BUCKETS, counts, strict=True)
            ]
            family.add_metric([title], [*buckets, ("+Inf", total)], seconds)
        return family

    def accounts(self, now: dt.datetime) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "pamrotate_accounts",
            "PAM users by state (directory state from the heartbeat, rotation failed or overdue).",
            labels=["state"],
        )
        users = PamUser.objects.all()
        counts = dict(users.values_list("account_state").annotate(n=Count("id")).order_by())
        counts["failed"] = users.filter(
            rotation_status__in=[RotationStatus.FAILED, RotationStatus.UNKNOWN]
        ).count()
        counts["overdue"] = users.overdue(now).count()
        counts["checked_out"] = checked_out()
        for state in ACCOUNT_STATES:
            family.add_metric([state], counts.get(state, 0))
        return family

    def gateways(self, now: dt.datetime):
        gateways = sorted(set(PamConfiguration.objects.values_list("gateway", flat=True)) | {"default"})
        waiting = GaugeMetricFamily(
            "pamrotate_oldest_waiting_attempt_seconds",
            "Age of the oldest queued attempt that a worker of the gateway has not taken (0: none).",
            labels=["gateway"],
        )
        oldest = dict(
            RotationAttempt.objects.filter(state=AttemptState.QUEUED)
            .filter(Q(retry_at__isnull=True) | Q(retry_at__lte=now))
            .values_list("user__configuration__gateway")
            .annotate(oldest=Min("created_at"))
            .order_by()
        )
        for gateway in gateways:
            waiting.add_metric([gateway], _seconds(now, oldest.get(gateway)))
        yield waiting
        seen = GaugeMetricFamily(
            "pamrotate_worker_last_seen_seconds",
            "Seconds since a worker of the gateway last took a task (its heartbeat); absent: never seen.",
            labels=["gateway"],
        )
        beats = dict(Heartbeat.objects.filter(name__startswith="worker:").values_list("name", "seen_at"))
        for gateway in gateways:
            if f"worker:{gateway}" in beats:
                seen.add_metric([gateway], _seconds(now, beats[f"worker:{gateway}"]))
        yield seen
        running = GaugeMetricFamily("pamrotate_attempts_running", "Attempts queued or running now.")
        running.add_metric([], RotationAttempt.objects.filter(state__in=ACTIVE_STATES).count())
        yield running

    def last_success(self, now: dt.datetime) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "pamrotate_last_successful_rotation_seconds",
            "Seconds since the last successful rotation under each configuration (absent: none yet).",
            labels=["configuration"],
        )
        last: dict[str, dt.datetime] = {}
        for tally in self.tallies:
            if tally.outcome in OK_STATES and tally.last_finished_at and tally.configuration_id:
                title = tally.configuration_title
                last[title] = max(last.get(title, tally.last_finished_at), tally.last_finished_at)
        for title, moment in sorted(last.items()):
            family.add_metric([title], _seconds(now, moment))
        return family

    def security_events(self):
        counts = dict(
            AuditEvent.objects.filter(
                event__in=[AuditEvent.CREDENTIAL_READ, AuditEvent.SIGNIN_FAILED, AuditEvent.SIGNIN_LOCKED_OUT]
            )
            .values_list("event")
            .annotate(count=Count("id"))
            .order_by()
        )
        for name, event, text in (
            ("pamrotate_credential_reads", AuditEvent.CREDENTIAL_READ, "Credentials read through the API."),
            ("pamrotate_signin_failures", AuditEvent.SIGNIN_FAILED, "Sign-in attempts refused."),
            ("pamrotate_signin_lockouts", AuditEvent.SIGNIN_LOCKED_OUT, "Sign-ins refused by a lock-out."),
        ):
            family = CounterMetricFamily(name, text + " (audit events kept; a purge lowers it.)")
            family.add_metric([], counts.get(event, 0))
            yield family

    def deliveries(self):
        failures = CounterMetricFamily(
            "pamrotate_webhook_delivery_failures",
            "Webhook tries that failed (a status other than 2xx, or no answer), by endpoint.",
            labels=["endpoint"],
        )
        failing = GaugeMetricFamily(
            "pamrotate_webhook_endpoint_failing", "1 when an endpoint is marked failing.", labels=["endpoint"]
        )
        rows = WebhookEndpoint.objects.annotate(
            tries=Sum("deliveries__tries"),
            delivered=Count("deliveries", filter=Q(deliveries__state=DeliveryState.DELIVERED)),
        )
        for endpoint in rows:
            failures.add_metric([endpoint.name], max(0, (endpoint.tries or 0) - endpoint.delivered))
            failing.add_metric([endpoint.name], 1 if endpoint.is_failing else 0)
        yield failures
        yield failing
        siem = StreamCursor.objects.filter(name="siem").first()
        siem_failures = CounterMetricFamily(
            "pamrotate_siem_delivery_failures",
            "SIEM sends that failed (each is tried again from the cursor).",
        )
        siem_failures.add_metric([], siem.failures if siem else 0)
        yield siem_failures
        if conf.siem_url():
            lag = GaugeMetricFamily("pamrotate_siem_lag_events", "Audit events not yet sent to the SIEM.")
            last = AuditEvent.objects.aggregate(last=Max("id"))["last"] or 0
            lag.add_metric([], max(0, last - (siem.last_event_id if siem else 0)))
            yield lag


def checked_out() -> int:
    """Return how many accounts are checked out now (0 without the access app; ops never needs it)."""
    if not apps.is_installed("access"):
        return 0
    held = apps.get_model("access", "CheckOut").objects.filter(ended_at__isnull=True)
    return held.values("user_id").distinct().count()


def registry() -> CollectorRegistry:
    """Return a registry holding only the database collector (no process metrics: they differ per worker)."""
    result = CollectorRegistry(auto_describe=False)
    result.register(DatabaseCollector())
    return result
