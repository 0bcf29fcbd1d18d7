"""Forms of the application and token pages; validation stays on the models."""

from __future__ import annotations

from crispy_forms.helper import FormHelper
from crispy_forms.layout import Submit
from django import forms

from api.models import Application, validate_cidrs
from records.models import PamConfiguration


class ApplicationForm(forms.ModelForm):
    """Create or change an application: its scope, networks and expiry."""

    class Meta:
        model = Application
        fields = ["name", "configurations", "allowed_networks", "expires_at", "is_active"]
        widgets = {
            "configurations": forms.CheckboxSelectMultiple,
            "allowed_networks": forms.Textarea(attrs={"rows": 3, "placeholder": "10.0.0.0/24"}),
            "expires_at": forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["configurations"].queryset = PamConfiguration.objects.order_by("title")
        self.fields["expires_at"].help_text = "UTC. Blank never expires."
        self.helper = FormHelper(self)
        self.helper.add_input(Submit("save", "Save"))


class TokenForm(forms.Form):
    """Issue a token: what it is for and when it expires."""

    name = forms.CharField(max_length=100, required=False, help_text="What the token is for.")
    expires_days = forms.IntegerField(
        label="expires in days", min_value=1, max_value=3650, required=False, help_text="Blank never expires."
    )

    def __init__(self, *args, submit_label: str = "Create token", **kwargs):
        super().__init__(*args, **kwargs)
        self.helper = FormHelper(self)
        self.helper.add_input(Submit("create", submit_label))


class AppRoleForm(forms.Form):
    """Turn AppRole on for an application, or change the lifetimes of the tokens its logins get."""

    token_ttl = forms.IntegerField(
        label="token TTL (seconds)", min_value=60, max_value=31 * 86400, initial=3600,
        help_text="A login's token lives this long, renewable by the same again.",
    )  # fmt: skip
    token_max_ttl = forms.IntegerField(
        label="token maximum TTL (seconds)", min_value=60, max_value=366 * 86400, initial=86400,
        help_text="Renewals never push a login's token past this age.",
    )  # fmt: skip

    def clean(self):
        data = super().clean()
        if data.get("token_ttl") and data.get("token_max_ttl") and data["token_max_ttl"] < data["token_ttl"]:
            raise forms.ValidationError("The maximum TTL must be at least the TTL.")
        return data


class SecretIdForm(forms.Form):
    """Issue an AppRole secret ID: its lifetime, how many logins it allows, from which networks."""

    ttl_hours = forms.IntegerField(
        label="expires in hours",
        min_value=1,
        max_value=24 * 3650,
        required=False,
        help_text="Blank never expires.",
    )
    uses = forms.IntegerField(
        label="logins allowed",
        min_value=1,
        max_value=1_000_000,
        required=False,
        help_text="Blank: unlimited.",
    )
    allowed_networks = forms.CharField(
        label="allowed client networks", required=False, validators=[validate_cidrs],
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "10.0.0.0/24"}),
        help_text="CIDRs a login may come from, one a line; blank allows any address.",
    )  # fmt: skip
