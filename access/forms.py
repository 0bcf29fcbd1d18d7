"""Forms of the access workflows: presentation only; the models and services validate."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from access.models import TEN_YEARS, AccessRequest, ConfigurationAccess, Pool
from records.models import PamUser


class AccessRequestForm(forms.ModelForm):
    class Meta:
        model = AccessRequest
        fields = ["reason", "wanted_minutes"]
        widgets = {"reason": forms.Textarea(attrs={"rows": 3})}


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("deny", "Deny")])
    comment = forms.CharField(max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 2}))
    minutes = forms.IntegerField(min_value=1, max_value=7 * 24 * 60, required=False)


class BreakGlassForm(forms.Form):
    justification = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 3}))
    minutes = forms.IntegerField(min_value=1, max_value=240, initial=60, label="Window (minutes)")

    def clean_justification(self) -> str:
        text = self.cleaned_data["justification"].strip()
        if not text:
            raise ValidationError("Say why you need the password now.")
        return text


class CheckOutForm(forms.Form):
    ttl = forms.IntegerField(min_value=1, max_value=TEN_YEARS, required=False, label="For (seconds)")


class ConfigurationAccessForm(forms.ModelForm):
    class Meta:
        model = ConfigurationAccess
        fields = [
            "require_approval",
            "rotate_after_approval",
            "checkout_ttl",
            "checkout_max_ttl",
            "rotate_after_use_minutes",
        ]


class PoolForm(forms.ModelForm):
    members = forms.ModelMultipleChoiceField(queryset=PamUser.objects.none(), required=False)

    class Meta:
        model = Pool
        fields = ["name", "configuration", "checkout_ttl", "checkout_max_ttl", "rotate_after_use_minutes"]

    def __init__(self, *args, configurations=None, **kwargs):
        super().__init__(*args, **kwargs)
        if configurations is not None:
            self.fields["configuration"].queryset = configurations
        self.fields["members"].queryset = PamUser.objects.filter(
            configuration__in=self.fields["configuration"].queryset
        ).order_by("title")
        if self.instance.pk:
            self.fields["members"].initial = list(self.instance.members.values_list("user_id", flat=True))

    def clean(self):
        data = super().clean()
        configuration = data.get("configuration")
        wrong = [
            user
            for user in data.get("members") or []
            if configuration and user.configuration_id != configuration.pk
        ]
        if wrong:
            raise ValidationError(f"{wrong[0]} is not in {configuration}.")
        return data
