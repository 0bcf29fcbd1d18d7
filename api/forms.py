"""Forms of the application and token pages; validation stays on the models."""

from __future__ import annotations

from crispy_forms.helper import FormHelper
from crispy_forms.layout import Submit
from django import forms

from api.models import Application
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
