"""Forms for the PAM records: validation that gives a clear message instead of a broken record."""

from __future__ import annotations

import ipaddress
import re

from crispy_forms.helper import FormHelper
from crispy_forms.layout import HTML, Div, Fieldset, Layout, Submit
from cryptography import x509
from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from ldap3.utils.dn import parse_dn

from records import keeper, ratelimit, schedules
from records.models import PamConfiguration, PamDirectory, PamUser

SCHEDULE_FIELDS = [
    "schedule_type",
    "schedule_time",
    "schedule_interval",
    "schedule_weekday",
    "schedule_day",
    "schedule_week",
    "schedule_cron",
    "schedule_tz",
]
SCHEDULE_WIDGETS = {
    "schedule_time": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
    "schedule_tz": forms.TextInput(attrs={"list": "time-zones", "autocomplete": "off"}),
    "schedule_cron": forms.TextInput(attrs={"placeholder": "0 2 * * 0"}),
}
IMPORT_MAX_BYTES = 5 * 1024 * 1024
# One DNS label: letters, digits and inner hyphens, at most 63 characters.
DNS_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
PORT_MAPPING_LINE = re.compile(r"^(\d{1,5})\s*=\s*([A-Za-z0-9][A-Za-z0-9_.-]*)$")


def is_ip_address(value: str) -> bool:
    """Return whether the text is an IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def is_hostname(value: str) -> bool:
    """Return whether the text is a DNS name (RFC 1123 labels, at most 253 characters)."""
    name = value[:-1] if value.endswith(".") else value
    if not name or len(name) > 253:
        return False
    labels = name.split(".")
    # An all-numeric last label would be a mistyped IPv4 address, not a name.
    return all(DNS_LABEL.match(label) for label in labels) and not labels[-1].isdigit()


def check_dn(value: str, what: str = "distinguished name") -> str:
    """Return the DN stripped, or raise ValidationError when ldap3 cannot parse it."""
    value = value.strip()
    if not value:
        return value
    try:
        parse_dn(value)
    except Exception:
        raise ValidationError(
            f'This is not a valid {what}; write it like "CN=svc-backup,OU=Service,DC=example,DC=com".'
        ) from None
    return value


class ConfigurationSelect(forms.Select):
    """A select whose options carry the configuration of their record, for filtering in the page."""

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        instance = getattr(value, "instance", None)
        if instance is not None:
            option["attrs"]["data-configuration"] = str(instance.configuration_id)
        return option


class RecordForm(forms.ModelForm):
    """A record form with a crispy helper; subclasses give the layout."""

    submit_label = "Save"
    # Fields only someone with "configure rotation settings" may change.
    rotation_fields: tuple[str, ...] = ()

    def __init__(self, *args, can_configure_rotation: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        if not can_configure_rotation:
            for name in self.rotation_fields:
                self.fields[name].disabled = True
                self.fields[name].help_text = "Changing this needs the right to configure rotation settings."
        self.helper = FormHelper(self)
        self.helper.form_tag = True
        self.helper.attrs = {"novalidate": ""}
        self.helper.layout = Layout(*self.layout(), Submit("save", self.submit_label))

    def layout(self) -> list:
        return list(self.fields)

    def clean_title(self) -> str:
        return self.cleaned_data["title"].strip()


def schedule_fieldset() -> Div:
    """Return the schedule fields and their preview, grouped so the page script can show only the relevant ones."""
    return Div(
        *SCHEDULE_FIELDS,
        HTML('{% include "records/_schedule_preview.html" %}'),
        css_class="schedule-fields",
    )


class SchedulePreviewForm(forms.Form):
    """The schedule fields of a record form, read from a query string for the live preview."""

    schedule_type = forms.ChoiceField(label="schedule", choices=schedules.TYPES)
    schedule_time = forms.TimeField(label="time of day", required=False)
    schedule_interval = forms.IntegerField(label="every N days", required=False)
    schedule_weekday = forms.IntegerField(label="weekday", required=False)
    schedule_day = forms.IntegerField(label="day of month", required=False)
    schedule_week = forms.IntegerField(label="week of the month", required=False)
    schedule_cron = forms.CharField(label="cron expression", required=False, max_length=100)
    schedule_tz = forms.CharField(label="time zone", required=False, max_length=64)
    # An id, not a ModelChoiceField: any text must give a message, and a huge number overflows SQL.
    configuration = forms.IntegerField(required=False, min_value=1, max_value=2**31)

    def error_message(self) -> str:
        """Return the first field error as one line, naming the field."""
        for name, errors in self.errors.items():
            label = self.fields[name].label if name in self.fields else name
            return f"{label}: {errors[0]}"
        return ""

    def schedule(self) -> schedules.Schedule:
        """Return the schedule the fields describe; "use the configuration's default" follows it."""
        data = self.cleaned_data
        if data["schedule_type"] == schedules.USE_DEFAULT and data["configuration"]:
            configuration = PamConfiguration.objects.filter(pk=data["configuration"]).first()
            if configuration is not None:
                return configuration.schedule
        return schedules.Schedule(
            type=data["schedule_type"],
            time=data["schedule_time"],
            interval=1 if data["schedule_interval"] is None else data["schedule_interval"],
            weekday=data["schedule_weekday"],
            day=data["schedule_day"],
            week=data["schedule_week"],
            cron=data["schedule_cron"],
            tz=data["schedule_tz"] or "UTC",
        )


class ImportForm(forms.Form):
    """Upload a Keeper project JSON file; it is parsed here so a bad one is refused at once."""

    file = forms.FileField(
        label="Keeper project file (JSON)",
        help_text="The JSON of Keeper's pam project import, or what pam_export wrote; at most 5 MB.",
        widget=forms.ClearableFileInput(attrs={"accept": ".json,application/json"}),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.file_name = ""
        self.helper = FormHelper(self)
        self.helper.layout = Layout("file", Submit("preview", "Upload and preview"))

    def clean_file(self) -> str:
        upload = self.cleaned_data["file"]
        if upload.size > IMPORT_MAX_BYTES:
            raise ValidationError(
                f"The file is {upload.size / 1024 / 1024:.1f} MB; the limit is {IMPORT_MAX_BYTES // 1024 // 1024} MB."
            )
        raw = upload.read()
        try:
            keeper.parse(raw)
        except keeper.KeeperError as exc:
            raise ValidationError(f"This file cannot be imported: {exc}.") from None
        self.file_name = upload.name[:200]
        return raw.decode("utf-8-sig")


class LoginForm(AuthenticationForm):
    """Django's sign-in form, refused outright after too many failures."""

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        address = self.request.META.get("REMOTE_ADDR") if self.request else None
        wait = ratelimit.seconds_locked(username, address)
        if wait:
            minutes = max(1, -(-wait // 60))
            raise ValidationError(
                f"Too many failed sign-in attempts; try again in {minutes} minutes.", code="rate_limited"
            )
        try:
            cleaned = super().clean()
        except ValidationError:
            ratelimit.record_failure(username, address)
            raise
        ratelimit.clear(username)
        return cleaned


class ConfigurationForm(RecordForm):
    """Create or change a PAM configuration."""

    rotation_fields = (
        "rotation_enabled",
        *SCHEDULE_FIELDS,
        "default_password_complexity",
        "manual_rotation_resets_schedule",
    )

    class Meta:
        model = PamConfiguration
        fields = [
            "title",
            "environment",
            "gateway",
            "application_folder",
            "network_id",
            "network_cidr",
            "port_mapping",
            "rotation_enabled",
            *SCHEDULE_FIELDS,
            "default_password_complexity",
            "manual_rotation_resets_schedule",
        ]
        widgets = {**SCHEDULE_WIDGETS, "port_mapping": forms.Textarea(attrs={"rows": 3})}

    def layout(self) -> list:
        return [
            Fieldset("General", "title", "environment", "gateway", "application_folder"),
            Fieldset("Network", "network_id", "network_cidr", "port_mapping"),
            Fieldset(
                "Rotation defaults",
                "rotation_enabled",
                schedule_fieldset(),
                "default_password_complexity",
                "manual_rotation_resets_schedule",
            ),
        ]

    def clean_network_cidr(self) -> str:
        value = self.cleaned_data["network_cidr"].strip()
        if value:
            try:
                value = str(ipaddress.ip_network(value, strict=False))
            except ValueError:
                raise ValidationError('Write the network in CIDR form, like "10.0.0.0/24".') from None
        return value

    def clean_port_mapping(self) -> str:
        lines = []
        for number, line in enumerate(self.cleaned_data["port_mapping"].splitlines(), start=1):
            line = line.strip()
            if not line:
                continue
            match = PORT_MAPPING_LINE.match(line)
            if not match or not 1 <= int(match.group(1)) <= 65535:
                raise ValidationError(
                    f'Line {number}: write one mapping a line as PORT=NAME, like "32636=ldaps", '
                    "with a port from 1 to 65535."
                )
            lines.append(f"{int(match.group(1))}={match.group(2)}")
        return "\n".join(lines)


class DirectoryForm(RecordForm):
    """Create or change a PAM directory."""

    class Meta:
        model = PamDirectory
        fields = [
            "title",
            "configuration",
            "directory_type",
            "hostname",
            "port",
            "use_ssl",
            "start_tls",
            "verify_certificate",
            "ca_certificate",
            "alternative_ips",
            "domain_name",
            "user_match",
            "administrative_credential",
        ]
        widgets = {
            "ca_certificate": forms.Textarea(
                attrs={"rows": 4, "placeholder": "-----BEGIN CERTIFICATE-----", "class": "font-monospace"}
            ),
            "alternative_ips": forms.Textarea(attrs={"rows": 2}),
            "administrative_credential": ConfigurationSelect,
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["configuration"].queryset = PamConfiguration.objects.order_by("title")
        credential = self.fields["administrative_credential"]
        credential.queryset = PamUser.objects.select_related("configuration").order_by("title")
        credential.label_from_instance = lambda user: f"{user.title} ({user.login}) — {user.configuration}"
        self.fields["port"].widget.attrs.update({"min": 1, "max": 65535})

    def layout(self) -> list:
        return [
            Fieldset("General", "title", "configuration", "directory_type", "domain_name", "user_match"),
            Fieldset(
                "Connection",
                "hostname",
                "port",
                "alternative_ips",
                "use_ssl",
                "start_tls",
                "verify_certificate",
                "ca_certificate",
            ),
            Fieldset("Administration", "administrative_credential"),
        ]

    def clean_hostname(self) -> str:
        value = self.cleaned_data["hostname"].strip()
        if not (is_ip_address(value) or is_hostname(value)):
            raise ValidationError('Enter a host name such as "ldap.example.com" or an IP address.')
        return value

    def clean_port(self) -> int:
        value = self.cleaned_data["port"]
        if value is None or not 1 <= value <= 65535:
            raise ValidationError("The port must be a number from 1 to 65535.")
        return value

    def clean_alternative_ips(self) -> str:
        text = self.cleaned_data["alternative_ips"]
        addresses = [item.strip() for item in text.replace(",", "\n").splitlines() if item.strip()]
        for address in addresses:
            if not is_ip_address(address):
                raise ValidationError(f'"{address[:60]}" is not an IP address; list one IP address a line.')
        return "\n".join(addresses)

    def clean_ca_certificate(self) -> str:
        value = self.cleaned_data["ca_certificate"].strip()
        if value:
            try:
                x509.load_pem_x509_certificates(value.encode())
            except (ValueError, TypeError):
                raise ValidationError(
                    "This is not a PEM X.509 certificate: paste the CA certificate including the "
                    '"-----BEGIN CERTIFICATE-----" and "-----END CERTIFICATE-----" lines.'
                ) from None
        return value

    def clean_user_match(self) -> str:
        return check_dn(self.cleaned_data["user_match"], "search base (distinguished name)")


class UserForm(RecordForm):
    """Create or change a PAM user; the password is write-only."""

    rotation_fields = ("managed", "rotation_enabled", "resource", "password_complexity", *SCHEDULE_FIELDS)

    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Leave blank to keep the stored password.",
    )

    class Meta:
        model = PamUser
        fields = [
            "title",
            "configuration",
            "login",
            "distinguished_name",
            "managed",
            "rotation_enabled",
            "resource",
            "password_complexity",
            *SCHEDULE_FIELDS,
        ]
        widgets = {**SCHEDULE_WIDGETS, "resource": ConfigurationSelect}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["configuration"].queryset = PamConfiguration.objects.order_by("title")
        resource = self.fields["resource"]
        resource.queryset = PamDirectory.objects.select_related("configuration").order_by("title")
        resource.label_from_instance = lambda directory: f"{directory.title} — {directory.configuration}"
        if self.instance.pk is None:
            self.fields["password"].help_text = "The account's current password, if you know it."

    def layout(self) -> list:
        return [
            Fieldset(
                "Account", "title", "configuration", "login", "password", "distinguished_name", "managed"
            ),
            Fieldset("Rotation", "rotation_enabled", "resource", "password_complexity", schedule_fieldset()),
        ]

    def clean_distinguished_name(self) -> str:
        return check_dn(self.cleaned_data["distinguished_name"])

    def save(self, commit: bool = True) -> PamUser:
        user = super().save(commit=False)
        if self.cleaned_data.get("password"):
            user.set_password(self.cleaned_data["password"])
        if commit:
            user.save()
        return user


FORMS = {PamConfiguration: ConfigurationForm, PamDirectory: DirectoryForm, PamUser: UserForm}
