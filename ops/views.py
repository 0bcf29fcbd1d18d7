"""/metrics for Prometheus, and the webhook pages (Administrators only)."""

from __future__ import annotations

import hmac
import ipaddress

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from accounts import policy
from accounts.mfa import require_verified
from accounts.policy import Action
from audit.actors import Actor
from audit.events import record_event
from audit.models import AuditEvent, Category, Outcome
from ops import conf, metrics, webhooks
from ops.forms import WebhookForm
from ops.models import DeliveryState, WebhookEndpoint


def scrape_allowed(request: HttpRequest) -> bool:
    """Return whether this request may read /metrics; raise Http404 when /metrics is not configured.

    With a token and an address list both set, a scrape needs both.
    """
    token, networks = conf.metrics_token(), conf.metrics_networks()
    if not token and not networks:
        raise Http404("metrics are off")
    if token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return False
    if networks:
        try:
            address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
        except ValueError:
            return False
        return any(address in network for network in networks)
    return True


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not scrape_allowed(request):
        response = HttpResponse("unauthorized\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="pamrotate metrics"'
        return response
    return HttpResponse(generate_latest(metrics.registry()), content_type=CONTENT_TYPE_LATEST)


def _audit(request: HttpRequest, event: str, endpoint: WebhookEndpoint, message: str) -> None:
    """Record a change of the alert settings under its own event name."""
    record_event(
        event,
        instance=endpoint,
        actor=Actor.from_request(request),
        outcome=Outcome.OK,
        category=Category.SECURITY,
        message=message,
    )


@login_required
def webhook_list(request: HttpRequest) -> HttpResponse:
    policy.require(request, Action.MANAGE_ALERTS)
    endpoints = WebhookEndpoint.objects.annotate(
        pending=Count("deliveries", filter=Q(deliveries__state=DeliveryState.PENDING)),
        given_up=Count("deliveries", filter=Q(deliveries__state=DeliveryState.GIVEN_UP)),
    )
    return render(request, "ops/webhook_list.html", {"endpoints": endpoints, "form": WebhookForm()})


@login_required
@require_verified
def webhook_create(request: HttpRequest) -> HttpResponse:
    policy.require(request, Action.MANAGE_ALERTS)
    form = WebhookForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        endpoint, secret = webhooks.create_endpoint(data["name"], data["url"], data["events"], data["format"])
        _audit(
            request,
            AuditEvent.WEBHOOK_ADDED,
            endpoint,
            f"Webhook endpoint {endpoint.name} added ({endpoint.url_host}; {endpoint.events})",
        )
        return render(request, "ops/webhook_created.html", {"endpoint": endpoint, "secret": secret})
    return render(request, "ops/webhook_form.html", {"form": form})


@login_required
def webhook_detail(request: HttpRequest, pk: int) -> HttpResponse:
    policy.require(request, Action.MANAGE_ALERTS)
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    deliveries = endpoint.deliveries.all()[:100]
    return render(request, "ops/webhook_detail.html", {"endpoint": endpoint, "deliveries": deliveries})


@login_required
@require_verified
@require_POST
def webhook_test(request: HttpRequest, pk: int) -> HttpResponse:
    policy.require(request, Action.MANAGE_ALERTS)
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    delivery = webhooks.send_test(endpoint)
    delivery.refresh_from_db()
    messages.info(request, f"Test message {delivery.get_state_display().lower()}.")
    return redirect(endpoint)


@login_required
@require_verified
@require_POST
def webhook_resume(request: HttpRequest, pk: int) -> HttpResponse:
    policy.require(request, Action.MANAGE_ALERTS)
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    endpoint.resume()
    _audit(request, AuditEvent.WEBHOOK_RESUMED, endpoint, f"Webhook endpoint {endpoint.name} resumed")
    messages.success(request, f"{endpoint.name} resumed: deliveries are sent again.")
    return redirect(endpoint)


@login_required
@require_verified
@require_POST
def webhook_delete(request: HttpRequest, pk: int) -> HttpResponse:
    policy.require(request, Action.MANAGE_ALERTS)
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    _audit(request, AuditEvent.WEBHOOK_REMOVED, endpoint, f"Webhook endpoint {endpoint.name} removed")
    endpoint.delete()
    messages.success(request, f"{endpoint.name} removed.")
    return redirect("ops:webhook-list")
