"""manage.py pam_webhook add|list|test|remove: alert endpoints from the command line."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from audit.actors import Actor
from audit.events import record_event
from audit.models import AuditEvent, Category, Outcome
from ops import webhooks
from ops.models import WebhookEndpoint, WebhookFormat
from records.management.commands.pam_import import os_user


class Command(BaseCommand):
    help = "Add, list, test or remove alert webhook endpoints."

    def add_arguments(self, parser):
        verbs = parser.add_subparsers(dest="verb", required=True)
        add = verbs.add_parser("add", help="add an endpoint; prints its signing secret once")
        add.add_argument("url")
        add.add_argument("--events", required=True, help="comma-separated: failure,drift,overdue,upcoming")
        add.add_argument("--format", default=WebhookFormat.STANDARD, choices=WebhookFormat.values)
        add.add_argument("--name", help="default: the URL's host")
        verbs.add_parser("list", help="list the endpoints")
        test = verbs.add_parser("test", help="send a test message now")
        test.add_argument("name")
        remove = verbs.add_parser("remove", help="remove an endpoint and its delivery log")
        remove.add_argument("name")

    def handle(self, *args, verb: str, **options):
        return getattr(self, f"do_{verb}")(**options) or None

    def _endpoint(self, name: str) -> WebhookEndpoint:
        endpoint = WebhookEndpoint.objects.filter(name=name).first()
        if endpoint is None:
            raise CommandError(f"no webhook endpoint is named {name[:64]!r}")
        return endpoint

    def _audit(self, event: str, endpoint: WebhookEndpoint, message: str) -> None:
        record_event(
            event,
            instance=endpoint,
            actor=Actor.system(os_user()),
            outcome=Outcome.OK,
            category=Category.SECURITY,
            message=message,
        )

    def do_add(self, url: str, events: str, format: str, name: str | None = None, **options):
        try:
            names = webhooks.parse_events(events)
            checked = webhooks.check_url(url)
            from urllib.parse import urlsplit

            slug = (name or urlsplit(checked).hostname or "endpoint").replace(".", "-")[:64]
            endpoint, secret = webhooks.create_endpoint(slug, checked, names, format)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self._audit(
            AuditEvent.WEBHOOK_ADDED,
            endpoint,
            f"Webhook endpoint {endpoint.name} added ({endpoint.url_host}; {endpoint.events})",
        )
        self.stdout.write(
            f"Added {endpoint.name} ({endpoint.get_format_display()}; events {endpoint.events})."
        )
        self.stdout.write(f"Signing secret (shown once): {secret}")

    def do_list(self, **options):
        for endpoint in WebhookEndpoint.objects.all():
            state = (
                f"failing since {endpoint.failing_since:%Y-%m-%d %H:%M}" if endpoint.is_failing else "active"
            )
            self.stdout.write(
                f"{endpoint.name}\t{endpoint.url_host}\t{endpoint.format}\t{endpoint.events}\t{state}"
            )

    def do_test(self, name: str, **options):
        delivery = webhooks.send_test(self._endpoint(name))
        delivery.refresh_from_db()
        self.stdout.write(
            f"Test message: {delivery.get_state_display().lower()} {delivery.last_error}".rstrip()
        )

    def do_remove(self, name: str, **options):
        endpoint = self._endpoint(name)
        self._audit(AuditEvent.WEBHOOK_REMOVED, endpoint, f"Webhook endpoint {name} removed")
        endpoint.delete()
        self.stdout.write(f"Removed {name}.")
