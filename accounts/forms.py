"""Sign-in, second-factor and people forms."""

from __future__ import annotations

from crispy_forms.helper import FormHelper
from django import forms
from django.contrib.auth import authenticate
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from accounts import roles, signin
from accounts.models import Preference
from audit.models import AuditEvent, Outcome


class SignInForm(AuthenticationForm):
    """Django's sign-in form; the lock-out check, password check and failure count run serialized."""

    lockout_error = ""

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        password = self.cleaned_data.get("password")
        if not username or password is None:
            return self.cleaned_data
        name = signin.normalize_username(username)
        with signin.serialized(name, signin.client_address(self.request)):
            wait = signin.seconds_locked(self.request, name) if self._locked(name) else 0
            if wait:
                signin.audit(self.request, AuditEvent.SIGNIN_LOCKED_OUT, username=name, outcome=Outcome.FAIL,
                             note="refused while locked out")  # fmt: skip
            else:
                self.user_cache = authenticate(self.request, username=username, password=password)
        # Raised after the block: the audit event and the failure count must be committed.
        if wait:
            raise ValidationError(signin.lockout_message(wait), code="locked_out")
        if self.user_cache is None:
            raise self.get_invalid_login_error()
        self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data

    def _locked(self, name: str) -> bool:
        from axes.handlers.proxy import AxesProxyHandler

        return not AxesProxyHandler.is_allowed(self.request, {"username": name})


class CodeForm(forms.Form):
    """A code from the authenticator app, or a recovery code."""

    code = forms.CharField(
        max_length=32,
        label="Code",
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "text", "autofocus": True}
        ),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.helper = FormHelper(self)
        self.helper.form_tag = False


ROLE_CHOICES = [(roles.NO_ROLE, "No role")] + [(role, role) for role in roles.ROLES]


class PersonForm(forms.Form):
    """A local person's role and whether the account is active."""

    role = forms.ChoiceField(choices=ROLE_CHOICES, required=False)
    is_active = forms.BooleanField(required=False, label="Active (may sign in)")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.helper = FormHelper(self)
        self.helper.form_tag = False


class TimeZoneForm(forms.ModelForm):
    """The zone a person's pages show times in (validated on the model)."""

    class Meta:
        model = Preference
        fields = ["time_zone"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from accounts.timezones import zone_names

        choices = [("", "My browser's time zone")] + [(name, name) for name in zone_names()]
        self.fields["time_zone"].widget = forms.Select(choices=choices)
        self.helper = FormHelper(self)
        self.helper.form_tag = False


class AddPersonForm(forms.Form):
    """A new local person: a user name, a name, an e-mail address and a role."""

    username = forms.RegexField(regex=r"^[\w.@+-]{1,150}$", max_length=150, label="User name")
    first_name = forms.CharField(max_length=150, required=False)
    last_name = forms.CharField(max_length=150, required=False)
    email = forms.EmailField(required=False, label="E-mail")
    role = forms.ChoiceField(choices=ROLE_CHOICES, required=False)

    def clean_username(self) -> str:
        from django.contrib.auth import get_user_model

        name = self.cleaned_data["username"].strip().lower()
        if get_user_model().objects.filter(username__iexact=name).exists():
            raise ValidationError("Someone has this user name already.")
        return name


class GrantForm(forms.Form):
    """A role on some configurations (or all), for a person or a directory group."""

    person = forms.ModelChoiceField(queryset=None, required=False)
    group_dn = forms.CharField(max_length=500, required=False, label="or directory group DN")
    role = forms.TypedChoiceField(coerce=int, choices=[])
    all_configurations = forms.BooleanField(required=False)
    configurations = forms.ModelMultipleChoiceField(queryset=None, required=False)

    def __init__(self, *args, **kwargs):
        from django.contrib.auth import get_user_model

        from accounts.models import Grant, GrantRole

        super().__init__(*args, **kwargs)
        self.fields["person"].queryset = get_user_model().objects.order_by("username")
        configurations = Grant._meta.get_field("configurations").related_model  # records' configuration
        self.fields["configurations"].queryset = configurations.objects.order_by("title")
        self.fields["role"].choices = GrantRole.choices

    def clean(self):
        cleaned = super().clean()
        if bool(cleaned.get("person")) == bool(cleaned.get("group_dn", "").strip()):
            raise ValidationError("Give the role to one person or to one directory group.")
        if not cleaned.get("all_configurations") and not cleaned.get("configurations"):
            raise ValidationError("Pick the configurations, or all of them.")
        return cleaned
