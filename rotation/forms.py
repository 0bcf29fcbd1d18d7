"""Forms of rotation's pages: presentation only; the models validate."""

from __future__ import annotations

from crispy_forms.helper import FormHelper
from crispy_forms.layout import Layout
from django import forms

from records import schedules
from records.forms import SCHEDULE_FIELDS, SCHEDULE_WIDGETS, RecordForm, schedule_fieldset
from records.models import PamUser

SHOW_CHOICES = [("all", "All accounts"), ("new", "Not yet managed"), ("adopted", "Already managed")]
ENABLED_CHOICES = [("any", "Enabled or disabled"), ("enabled", "Enabled only"), ("disabled", "Disabled only")]


class DiscoveryFilterForm(forms.Form):
    """Narrow a discovery's results (sent with every discovery and adoption POST)."""

    q = forms.CharField(required=False, max_length=200, label="Login or DN contains")
    show = forms.ChoiceField(choices=SHOW_CHOICES, required=False, initial="all")
    enabled = forms.ChoiceField(choices=ENABLED_CHOICES, required=False, initial="any")

    def apply(self, found: list) -> list:
        """Return the discovered accounts that pass the filters (invalid values filter nothing)."""
        data = self.cleaned_data if self.is_valid() else {}
        text = (data.get("q") or "").casefold()
        show, enabled = data.get("show") or "all", data.get("enabled") or "any"
        kept = []
        for item in found:
            account = item.account
            if text and text not in f"{account.login} {account.principal_name} {account.dn}".casefold():
                continue
            if (show == "new" and item.adopted) or (show == "adopted" and not item.adopted):
                continue
            if (enabled == "enabled" and account.enabled is False) or (
                enabled == "disabled" and account.enabled is not False
            ):
                continue
            kept.append(item)
        return kept


class AdoptForm(RecordForm):
    """The schedule and complexity adopted accounts get; the defaults follow the configuration."""

    # The complexity as the user form shows it (length, minimums, special characters), not Keeper's string.
    complexity_field = "password_complexity"
    complexity_optional = True

    class Meta:
        model = PamUser
        fields = [*SCHEDULE_FIELDS, "password_complexity"]
        widgets = SCHEDULE_WIDGETS

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("initial", {"schedule_type": schedules.USE_DEFAULT})
        # Only a template of schedule and complexity: without a directory it must not claim rotation,
        # or the model's "pick the directory" rule names a field this form does not have.
        kwargs.setdefault("instance", PamUser(rotation_enabled=False))
        super().__init__(*args, **kwargs)
        self.helper = FormHelper(self)
        self.helper.form_tag = False
        self.helper.disable_csrf = True
        self.helper.layout = Layout(schedule_fieldset(), self.complexity_fieldset())
