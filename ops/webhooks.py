"""Alert webhooks: which audit events become alerts, the bodies (Standard Webhooks, Slack, Teams), delivery.

Alerts come from the audit log through a cursor (``fan_out``, at each dispatcher tick), so every
way an event is written is covered and a crash between two events loses none. Each delivery is a
django-q2 task given the delivery's id only; a failed try waits (doubling from
PAMROTATE_WEBHOOK_RETRY_SECONDS) and is released by ``release_retries``. After MAX_TRIES a
delivery is given up; after FAILING_AFTER failed tries in a row the endpoint is marked failing
and nothing more is sent to it until it is resumed. No body carries a secret: the summary and
fields come from audit events, which never hold one; the signing secret only signs.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from audit.models import AuditEvent
from ops import conf, stream
from ops.models import (
    FAILING_AFTER,
    MAX_TRIES,
    DeliveryState,
    StreamCursor,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookFormat,
)

NAME = "webhooks"
TIMEOUT = 10
TYPES = {
    WebhookEvent.FAILURE: "rotation.failed",
    WebhookEvent.DRIFT: "account.state_problem",
    WebhookEvent.OVERDUE: "rotation.overdue",
    WebhookEvent.UPCOMING: "rotation.upcoming",
    WebhookEvent.CHECKOUT: "account.checked_out",
    WebhookEvent.BREAK_GLASS: "account.break_glass",
    WebhookEvent.TEST: "test",
}
FAILURE_EVENTS = {AuditEvent.ROTATION_ON_DEMAND_FAIL, AuditEvent.ROTATION_SCHEDULED_FAIL}


def classify(event: AuditEvent) -> str:
    """Return the webhook event an audit event raises, or "" when none."""
    if event.event in FAILURE_EVENTS:
        return WebhookEvent.FAILURE
    if event.event == AuditEvent.ACCOUNT_STATE_CHANGED and event.outcome == "fail":
        return WebhookEvent.DRIFT
    if event.event == AuditEvent.CHECKED_OUT:
        return WebhookEvent.CHECKOUT
    if event.event == AuditEvent.BREAK_GLASS:
        return WebhookEvent.BREAK_GLASS
    return ""


def parse_events(text: str) -> list[str]:
    """Return the event names of a comma-separated list or raise ValidationError naming a bad one."""
    names = [name.strip().lower() for name in (text or "").split(",") if name.strip()]
    unknown = [name for name in names if name not in WebhookEvent.values]
    if unknown or not names:
        raise ValidationError(
            f"events are a comma-separated list of {', '.join(WebhookEvent.values)}"
            + (f"; not {', '.join(unknown)[:100]}" if unknown else "")
        )
    return sorted(set(names), key=WebhookEvent.values.index)


def check_url(url: str) -> str:
    """Return a URL webhooks may post to, or raise ValidationError saying why not.

    Dev mode takes any http(s) URL (tests use a receiver on 127.0.0.1). Production takes https
    only and, when PAMROTATE_WEBHOOK_ALLOWED_HOSTS is set, only those hosts (``.example.com`` for
    a domain); otherwise a host that resolves to a loopback, private or link-local address is refused.
    """
    url = (url or "").strip()
    if len(url) > 2000 or any(ord(ch) < 33 for ch in url):
        raise ValidationError("a URL is at most 2,000 characters, without spaces")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValidationError("this is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("write an http:// or https:// URL with a host")
    if conf.dev_mode():
        return url
    if parts.scheme != "https":
        raise ValidationError("webhooks go over https outside dev mode")
    host = parts.hostname.lower()
    allowed = conf.webhook_allowed_hosts()
    if allowed:
        if not any(host == name or (name.startswith(".") and host.endswith(name)) for name in allowed):
            raise ValidationError("this host is not in PAMROTATE_WEBHOOK_ALLOWED_HOSTS")
        return url
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, parts.port or 443)}
    except OSError:
        raise ValidationError("this host name does not resolve") from None
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not ip.is_global:
            raise ValidationError(
                "this host resolves to a private or loopback address; list it in PAMROTATE_WEBHOOK_ALLOWED_HOSTS"
            )
    return url


@transaction.atomic
def create_endpoint(name: str, url: str, events: list[str], body_format: str) -> tuple[WebhookEndpoint, str]:
    """Create an endpoint; return it and its signing secret (shown once, stored encrypted)."""
    from ops.models import new_signing_secret

    secret = new_signing_secret()
    if not WebhookEndpoint.objects.exists():
        # The first endpoint starts from now: events from before it existed raise no alert.
        StreamCursor.objects.filter(name=NAME).delete()
        stream.cursor(NAME, from_now=True)
    endpoint = WebhookEndpoint(name=name, events=",".join(events), format=body_format)
    endpoint.set_url(check_url(url))
    endpoint.set_secret(secret)
    endpoint.full_clean()
    endpoint.save()
    return endpoint, secret


# -- Bodies ------------------------------------------------------------------------------------------


def event_payload(kind: str, summary: str, *, event: AuditEvent | None = None, **data) -> dict:
    """Return the data of one alert (no secret: audit fields and a summary)."""
    fields = {"event": kind, "summary": summary, **data}
    if event is not None:
        fields.update(
            audit_event_id=event.pk,
            audit_event=event.event,
            record_type=event.record_type,
            record_id=event.record_id,
            record_title=event.record_title,
            actor=event.actor_name,
            message=event.message,
            occurred_at=event.created_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        )
    return fields


def body(endpoint: WebhookEndpoint, delivery: WebhookDelivery) -> dict:
    """Return the JSON body in the endpoint's format."""
    if endpoint.format == WebhookFormat.SLACK:
        return {"text": f"pamrotate: {delivery.summary}"}
    if endpoint.format == WebhookFormat.TEAMS:
        facts = [
            {"title": key.replace("_", " "), "value": str(value)}
            for key, value in delivery.payload.items()
            if key not in ("summary",) and value not in (None, "")
        ]
        card = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": [
                {"type": "TextBlock", "text": "pamrotate", "weight": "Bolder"},
                {"type": "TextBlock", "text": delivery.summary, "wrap": True},
                {"type": "FactSet", "facts": facts},
            ],
        }
        return {
            "type": "message",
            "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}],
        }
    return {
        "type": f"pamrotate.{TYPES.get(delivery.event, delivery.event)}",
        "timestamp": delivery.created_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "data": delivery.payload,
    }


def signed_request(
    endpoint: WebhookEndpoint, delivery: WebhookDelivery, now: dt.datetime
) -> tuple[bytes, dict]:
    """Return the body and headers of one try, signed per Standard Webhooks (every format carries the id)."""
    data = json.dumps(body(endpoint, delivery), separators=(",", ":"), ensure_ascii=False)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "pamrotate-webhooks",
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(int(now.timestamp())),
    }
    if endpoint.format == WebhookFormat.STANDARD:
        headers["webhook-signature"] = Webhook(endpoint.get_secret()).sign(delivery.message_id, now, data)
    return data.encode(), headers


# -- Queueing and delivery ---------------------------------------------------------------------------


def queue(
    endpoints, kind: str, summary: str, payload: dict, *, audit_event_id: int | None = None
) -> list[int]:
    """Record a delivery for each endpoint that wants the event and send each after the commit; return their ids."""
    deliveries = [
        WebhookDelivery.objects.create(
            endpoint=endpoint,
            event=kind,
            summary=summary[:500],
            payload=payload,
            audit_event_id=audit_event_id,
        )
        for endpoint in endpoints
        if endpoint.wants(kind) and (not endpoint.is_failing or kind == WebhookEvent.TEST)
    ]
    ids = [delivery.pk for delivery in deliveries]
    transaction.on_commit(lambda: [_enqueue(pk) for pk in ids])
    return ids


def _enqueue(delivery_id: int) -> None:
    from django_q.tasks import async_task

    async_task("ops.tasks.deliver", delivery_id, task_name=f"webhook-{delivery_id}")


def fan_out(now: dt.datetime | None = None, limit: int = 500) -> int:
    """Turn the audit events after the webhook cursor into deliveries; return how many were queued."""
    endpoints = list(WebhookEndpoint.objects.filter(failing_since__isnull=True))
    if not endpoints or not stream.has_new_events(NAME):
        return 0  # nothing to do: no lease taken, no write
    holder = stream.holder_name()
    row = stream.take_lease(NAME, holder, now, from_now=True)
    if row is None:
        return 0
    events = stream.events_after(row.last_event_id, limit, now)
    if not events:
        return 0
    queued = 0
    with transaction.atomic():
        for event in events:
            kind = classify(event)
            if kind and endpoints:
                summary = f"{event.label}: {event.record_title}. {event.message}".strip()
                payload = event_payload(kind, summary, event=event)
                queued += len(queue(endpoints, kind, summary, payload, audit_event_id=event.pk))
        stream.advance(NAME, holder, events[-1].pk, sent=queued)
    return queued


def release_retries(now: dt.datetime | None = None) -> int:
    """Send again every pending delivery whose wait is over (a conditional UPDATE takes each once)."""
    now = now or timezone.now()
    released = 0
    for pk, retry_at in WebhookDelivery.objects.filter(
        state=DeliveryState.PENDING, retry_at__lte=now
    ).values_list("pk", "retry_at")[:200]:
        if WebhookDelivery.objects.filter(pk=pk, retry_at=retry_at).update(retry_at=None):
            _enqueue(pk)
            released += 1
    return released


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a redirect is an answer, not a new target (it could point inside the network)


_opener = urllib.request.build_opener(_NoRedirects)


def post(url: str, data: bytes, headers: dict) -> tuple[int | None, str]:
    """POST once; return (status, error) — the error a class name, never the body or the URL's query."""
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")  # noqa: S310 - checked URL
    try:
        with _opener.open(request, timeout=TIMEOUT) as response:
            return response.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return None, type(reason).__name__


def deliver(delivery_id: int, now: dt.datetime | None = None) -> str:
    """Try one delivery once; return its state afterwards."""
    delivery = WebhookDelivery.objects.select_related("endpoint").filter(pk=delivery_id).first()
    if delivery is None or delivery.state != DeliveryState.PENDING:
        return delivery.state if delivery else "missing"
    endpoint = delivery.endpoint
    now = now or timezone.now()
    if endpoint.is_failing and delivery.event != WebhookEvent.TEST:
        return _finish(delivery, DeliveryState.GIVEN_UP, None, "the endpoint is marked failing")
    try:
        url = check_url(endpoint.url)
    except ValidationError as exc:
        status, error = None, exc.messages[0][:300]
    else:
        data, headers = signed_request(endpoint, delivery, now)
        status, error = post(url, data, headers)
    delivery.tries += 1
    if status is not None and 200 <= status < 300:
        endpoint.record_success()
        return _finish(delivery, DeliveryState.DELIVERED, status, "")
    failing = endpoint.record_failure()
    if failing or delivery.tries >= MAX_TRIES:
        reason = f"marked failing after {FAILING_AFTER} failed tries in a row" if failing else "out of tries"
        return _finish(delivery, DeliveryState.GIVEN_UP, status, f"{error}; {reason}")
    delivery.retry_at = now + delivery.backoff(conf.webhook_retry_seconds())
    delivery.last_status, delivery.last_error = status, error
    delivery.save(update_fields=["tries", "retry_at", "last_status", "last_error"])
    return delivery.state


def _finish(delivery: WebhookDelivery, state: str, status: int | None, error: str) -> str:
    delivery.state, delivery.last_status, delivery.last_error = state, status, error[:300]
    delivery.finished_at, delivery.retry_at = timezone.now(), None
    delivery.save(update_fields=["state", "tries", "last_status", "last_error", "finished_at", "retry_at"])
    return state


def send_test(endpoint: WebhookEndpoint) -> WebhookDelivery:
    """Queue a test message to one endpoint (it resumes a failing endpoint when it gets through)."""
    summary = f"Test message from pamrotate to {endpoint.name}"
    with transaction.atomic():
        ids = queue([endpoint], WebhookEvent.TEST, summary, event_payload(WebhookEvent.TEST, summary))
    return WebhookDelivery.objects.get(pk=ids[0])
