"""Prometheus metrics, computed from the database at each scrape (a custom collector, no counters in memory).

Why from the database: several gunicorn workers answer /metrics and several qclusters (one per
gateway, on other hosts too) do the work. In-process counters would give each scrape the view of
whichever worker answered, and prometheus_client's multiprocess mode covers one host's processes
only. The database is what every process shares, so every scrape agrees; each figure is one
grouped, indexed query (bench/metrics_scrape.py: 100,000 accounts).
"""

from __future__ import annotations

import datetime as dt

from django.db import connection
from django.db.models import Count, Max, Min, Q, Sum
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from audit.models import AuditEvent
from ops import conf
from ops.models import DeliveryState, StreamCursor, WebhookEndpoint
from records.models import AccountState, PamConfiguration, PamUser, RotationStatus
from rotation.models import ACTIVE_STATES, OK_STATES, AttemptState, Heartbeat, RotationAttempt

DURATION_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300)
ENDED_STATES = (
    AttemptState.SUCCEEDED,
    AttemptState.RECONCILED,
    AttemptState.FAILED,
    AttemptState.UNKNOWN,
    AttemptState.REFUSED,
)
ACCOUNT_STATES = ("ok", "failed", "overdue", "drifted", "disabled", "locked", "expired", "checked_out")


def _seconds(now: dt.datetime, moment: dt.datetime | None) -> float:
    return max(0.0, (now - moment).total_seconds()) if moment else 0.0


class DatabaseCollector(Collector):
    """Read every pamrotate metric from the database when Prometheus scrapes."""

    def collect(self):
        now = timezone.now()
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
        rows = (
            RotationAttempt.objects.filter(state__in=ENDED_STATES)
            .values_list("user__configuration__title", "trigger", "state")
            .annotate(count=Count("id"))
            .order_by()
        )
        for title, trigger, state, count in rows:
            family.add_metric([title, trigger, state], count)
        yield family

    def durations(self) -> HistogramMetricFamily:
        """Return the rotation-duration histogram: one pass, a bucket count per column."""
        family = HistogramMetricFamily(
            "pamrotate_rotation_duration_seconds",
            "Time from a worker starting an attempt to its end, finished attempts.",
            labels=["configuration"],
        )
        if connection.vendor == "postgresql":
            seconds = "EXTRACT(EPOCH FROM (a.finished_at - a.started_at))"
        else:
            seconds = "((julianday(a.finished_at) - julianday(a.started_at)) * 86400.0)"
        buckets = ", ".join(f"SUM(CASE WHEN {seconds} <= %s THEN 1 ELSE 0 END)" for _ in DURATION_BUCKETS)
        quote = connection.ops.quote_name
        sql = (
            f"SELECT c.title, COUNT(*), SUM({seconds}), {buckets} "  # noqa: S608 - names from the models
            f"FROM {quote(RotationAttempt._meta.db_table)} a "
            f"JOIN {quote(PamUser._meta.db_table)} u ON u.id = a.user_id "
            f"JOIN {quote(PamConfiguration._meta.db_table)} c ON c.id = u.configuration_id "
            "WHERE a.started_at IS NOT NULL AND a.finished_at IS NOT NULL "
            f"AND a.state IN ({', '.join('%s' for _ in ENDED_STATES)}) GROUP BY c.title"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [*DURATION_BUCKETS, *[str(state) for state in ENDED_STATES]])
            rows = cursor.fetchall()
        for title, count, total, *counts in rows:
            cumulative = [
                (str(float(bound)), int(n or 0)) for bound, n in zip(DURATION_BUCKETS, counts, strict=True)
            ]
            family.add_metric([title], [*cumulative, ("+Inf", count)], float(total or 0.0))
        return family

    def accounts(self, now: dt.datetime) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "pamrotate_accounts",
            "PAM users by state (directory state from the heartbeat, rotation failed or overdue).",
            labels=["state"],
        )
        users = PamUser.objects.all()
        counts = users.aggregate(
            ok=Count("id", filter=Q(account_state=AccountState.OK)),
            failed=Count("id", filter=Q(rotation_status__in=[RotationStatus.FAILED, RotationStatus.UNKNOWN])),
            drifted=Count("id", filter=Q(account_state=AccountState.DRIFTED)),
            disabled=Count("id", filter=Q(account_state=AccountState.DISABLED)),
            locked=Count("id", filter=Q(account_state=AccountState.LOCKED)),
            expired=Count("id", filter=Q(account_state=AccountState.EXPIRED)),
        )
        counts["overdue"] = users.overdue(now).count()
        counts["checked_out"] = 0  # no check-out feature yet (DESIGN.md §9)
        for state in ACCOUNT_STATES:
            family.add_metric([state], counts[state])
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
        rows = (
            RotationAttempt.objects.filter(state__in=OK_STATES)
            .values_list("user__configuration__title")
            .annotate(last=Max("finished_at"))
            .order_by()
        )
        for title, last in rows:
            if last is not None:
                family.add_metric([title], _seconds(now, last))
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


def registry() -> CollectorRegistry:
    """Return a registry holding only the database collector (no process metrics: they differ per worker)."""
    result = CollectorRegistry(auto_describe=False)
    result.register(DatabaseCollector())
    return result
