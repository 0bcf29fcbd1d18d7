"""The webhook form: presentation only; the rules live in ops.webhooks (check_url, parse_events)."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from ops import webhooks
from ops.models import WebhookEndpoint, WebhookEvent, WebhookFormat


class WebhookForm(forms.Form):
    """Add an alert endpoint."""

    name = forms.SlugField(max_length=64, help_text="Letters, digits, - and _; the command line uses it.")
    url = forms.CharField(label="URL", max_length=2000)
    events = forms.MultipleChoiceField(
        choices=[choice for choice in WebhookEvent.choices if choice[0] != WebhookEvent.TEST],
        widget=forms.CheckboxSelectMultiple,
    )
    format = forms.ChoiceField(choices=WebhookFormat.choices, initial=WebhookFormat.STANDARD)

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        if WebhookEndpoint.objects.filter(name=name).exists():
            raise ValidationError("An endpoint of that name exists.")
        return name

    def clean_url(self) -> str:
        return webhooks.check_url(self.cleaned_data["url"])
