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
