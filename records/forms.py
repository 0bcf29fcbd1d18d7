"""Forms for the PAM records: presentation only (widgets, layout); the models validate (records/validators.py)."""

from __future__ import annotations

from crispy_forms.helper import FormHelper
from crispy_forms.layout import HTML, Div, Fieldset, Layout, Submit
from django import forms
from django.core.exceptions import ValidationError

from records import keeper, schedules
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
        help_text=f"The JSON of Keeper's pam project import, or what pam_export wrote; at most {keeper.MAX_MB} MB.",
        widget=forms.ClearableFileInput(attrs={"accept": ".json,application/json"}),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.file_name = ""
        self.helper = FormHelper(self)
        self.helper.layout = Layout("file", Submit("preview", "Upload and preview"))

    def clean_file(self) -> str:
        upload = self.cleaned_data["file"]
        if upload.size > keeper.MAX_BYTES:
            raise ValidationError(f"The file is {upload.size / 1024 / 1024:.1f} MB; the limit is {keeper.MAX_MB} MB.")
        raw = upload.read()
        try:
            keeper.parse(raw)
        except keeper.KeeperError as exc:
            raise ValidationError(f"This file cannot be imported: {exc}.") from None
        self.file_name = upload.name[:200]
        return raw.decode("utf-8-sig")


class ConfigurationForm(RecordForm):
    """Create or change a PAM configuration."""

    rotation_fields = (
        "rotation_enabled",
        *SCHEDULE_FIELDS,
        "default_password_complexity",
        "manual_rotation_resets_schedule",
        "heartbeat_hours",
        "rotate_when_drifted",
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
            "heartbeat_hours",
            "rotate_when_drifted",
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
            Fieldset("Heartbeat", "heartbeat_hours", "rotate_when_drifted"),
        ]


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
            "discovery_filter",
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
            Fieldset(
                "General",
                "title",
                "configuration",
                "directory_type",
                "domain_name",
                "user_match",
                "discovery_filter",
            ),
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

    def save(self, commit: bool = True) -> PamUser:
        user = super().save(commit=False)
        if self.cleaned_data.get("password"):
            user.set_password(self.cleaned_data["password"])
        if commit:
            user.save()
        return user


FORMS = {PamConfiguration: ConfigurationForm, PamDirectory: DirectoryForm, PamUser: UserForm}
