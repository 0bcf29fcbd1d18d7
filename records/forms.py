"""Forms for the PAM records: presentation only (widgets, layout); the models validate (records/validators.py)."""

from __future__ import annotations

from crispy_forms.helper import FormHelper
from crispy_forms.layout import HTML, Div, Fieldset, Layout, Submit
from django import forms
from django.core.exceptions import ValidationError

from records import changes, keeper, schedules
from records.complexity import KEEPER_SPECIALS, MAX_LENGTH, Complexity, ComplexityError, keeper_text
from records.fields import EDITABLE_FIELDS, ROTATION_FIELDS
from records.models import SCHEDULE_FIELDS, WINDOW_FIELDS, PamConfiguration, PamDirectory, PamUser

# The parts of a password complexity, as fields; the model keeps Keeper's "20,1,1,1,1[,CHARS]".
COMPLEXITY_PARTS = [
    ("complexity_length", "Length"),
    ("complexity_upper", "Uppercase"),
    ("complexity_lower", "Lowercase"),
    ("complexity_digits", "Digits"),
    ("complexity_special", "Special"),
]
RETYPE_SECRET = "Re-enter the password: it is never sent back to the browser."  # noqa: S105 (a message)
SCHEDULE_WIDGETS = {
    "schedule_time": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
    "schedule_tz": forms.TextInput(
        attrs={
            "list": "time-zones",
            "autocomplete": "off",
            "placeholder": "Start typing: Europe/Berlin, UTC…",
        }
    ),
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
    # Write-only fields: a form that fails validation says they must be typed again.
    secret_fields: tuple[str, ...] = ()
    # The model field holding Keeper's complexity string, edited through the complexity_* fields.
    complexity_field = ""
    # A blank length means "use the configuration's default" (users); else the length is required.
    complexity_optional = False
    # Fields of the form that are not the record's (left out of the audit's changed fields).
    form_only_fields: tuple[str, ...] = ()

    def __init__(self, *args, can_configure_rotation: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        if self.complexity_field:
            self._add_complexity_fields()
        configuration = self.fields.get("configuration")
        if configuration is not None and self.instance.pk is None and not self.initial.get("configuration"):
            only = list(configuration.queryset.values_list("pk", flat=True)[:2])
            if len(only) == 1:  # the only configuration there is: nothing to choose
                self.initial["configuration"] = only[0]
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

    def _add_complexity_fields(self) -> None:
        """Show the complexity string as a length, four minimums and the allowed special characters."""
        raw = self.fields[self.complexity_field]
        raw.widget = forms.HiddenInput()
        raw.required = False
        value = self[self.complexity_field].value()
        try:
            current = Complexity.parse(value) if value else None
        except ComplexityError:
            current = None
        for name, label in COMPLEXITY_PARTS:
            self.fields[name] = forms.IntegerField(
                label=label,
                required=False,
                widget=forms.NumberInput(attrs={"min": 0, "class": "complexity-part"}),
                initial=getattr(current, name.removeprefix("complexity_"), None),
            )
        self.fields["complexity_special_chars"] = forms.CharField(
            label="Allowed special characters",
            required=False,
            strip=False,
            max_length=100,
            widget=forms.TextInput(attrs={"class": "font-monospace complexity-part", "autocomplete": "off"}),
            initial=current.special_chars if current else KEEPER_SPECIALS,
            help_text="Keeper's set by default.",
        )
        self.rotation_fields = (*self.rotation_fields, *self.complexity_names)

    @property
    def complexity_names(self) -> list[str]:
        return [name for name, _label in COMPLEXITY_PARTS] + ["complexity_special_chars"]

    @property
    def changed_data(self) -> list[str]:
        """Return the changed model fields (the audit names them); the complexity counts as one."""
        hidden = {*self.form_only_fields, *(self.complexity_names if self.complexity_field else ())}
        names = [name for name in super().changed_data if name not in hidden]
        field = self.complexity_field
        if field and self._complexity_posted() and field not in names and hasattr(self, "cleaned_data"):
            if self.cleaned_data.get(field, "") != (self[field].initial or ""):
                names.append(field)
        return names

    def _complexity_posted(self) -> bool:
        return not self.fields["complexity_length"].disabled and any(
            self.add_prefix(name) in self.data for name in self.complexity_names
        )

    def complexity_fieldset(self) -> Div:
        """Return the complexity fields in one row, with the description the page script keeps current."""
        optional = "1" if self.complexity_optional else ""
        return Div(
            HTML(
                '<p class="form-label mb-1 fw-semibold">Password complexity</p>'
                '<p class="form-text mt-0 mb-1">The length, and at least how many of each kind.</p>'
                + (
                    '<p class="form-text mt-0">Leave the length blank to use the configuration\'s default.</p>'
                    if optional
                    else ""
                )
            ),
            Div(
                *[Div(name, css_class="col-6 col-md") for name, _label in COMPLEXITY_PARTS],
                css_class="row g-2",
            ),
            "complexity_special_chars",
            self.complexity_field,
            HTML(
                f'{{% if form.{self.complexity_field}.errors %}}<div class="invalid-feedback d-block mb-2">'
                f"{{{{ form.{self.complexity_field}.errors|join:' ' }}}}</div>{{% endif %}}"
            ),
            HTML(
                '<div class="alert alert-info small py-2" id="complexity-description" aria-live="polite"'
                f' data-optional="{optional}">{{{{ form.complexity_description }}}}</div>'
            ),
            css_class="complexity-fields mb-3",
        )

    def complexity_description(self) -> str:
        """Return what the form's complexity means, for the first render (the page script keeps it current)."""
        if self.is_bound:
            value = getattr(self, "cleaned_data", {}).get(self.complexity_field)
            if value is None:
                return ""
        else:
            value = self[self.complexity_field].value()
        if not value:
            return "Uses the configuration's default complexity."
        try:
            return Complexity.parse(value).describe()
        except ComplexityError as exc:
            return f"This complexity cannot be used: {exc}."

    def clean(self):
        cleaned = super().clean()
        if self.complexity_field and self._complexity_posted():
            parts = [cleaned.get(name) for name, _label in COMPLEXITY_PARTS]
            if all(part is None for part in parts) and self.complexity_optional:
                cleaned[self.complexity_field] = ""
            elif parts[0] is None:
                self.add_error("complexity_length", "Enter the password length.")
            elif not any(name in self.errors for name, _label in COMPLEXITY_PARTS):
                inherited = self._inherited_complexity(cleaned)
                numbers = [
                    parts[0],
                    *[
                        getattr(inherited, name.removeprefix("complexity_")) if part is None else part
                        for part, (name, _label) in zip(parts[1:], COMPLEXITY_PARTS[1:], strict=True)
                    ],
                ]
                posted = self.add_prefix("complexity_special_chars") in self.data
                chars = cleaned.get("complexity_special_chars", "") if posted else KEEPER_SPECIALS
                cleaned[self.complexity_field] = keeper_text(*numbers, chars)
        return cleaned

    def _inherited_complexity(self, cleaned: dict) -> Complexity:
        """Return what a blank minimum follows: the chosen configuration's default (a configuration: none, 0)."""
        configuration = cleaned.get("configuration") or getattr(self.instance, "configuration", None)
        if self.complexity_optional and configuration is not None:
            try:
                return Complexity.parse(configuration.default_password_complexity)
            except ComplexityError:
                pass
        return Complexity(length=MAX_LENGTH, upper=0, lower=0, digits=0, special=0)

    def _post_clean(self):
        super()._post_clean()
        if self.complexity_field and self._complexity_posted() and self.complexity_field in self._errors:
            # The model judged the composed string; say it next to the fields the person typed.
            self.add_error("complexity_length", self._errors.pop(self.complexity_field))

    def full_clean(self):
        super().full_clean()
        if self.is_bound and self._errors:
            for name in self.secret_fields:
                if self.data.get(self.add_prefix(name)) and name not in self._errors:
                    self.add_error(name, RETYPE_SECRET)


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
            raise ValidationError(
                f"The file is {upload.size / 1024 / 1024:.1f} MB; the limit is {keeper.MAX_MB} MB."
            )
        raw = upload.read()
        try:
            keeper.parse(raw)
        except keeper.KeeperError as exc:
            raise ValidationError(f"This file cannot be imported: {exc}.") from None
        self.file_name = upload.name[:200]
        return raw.decode("utf-8-sig")


class ConfigurationForm(RecordForm):
    """Create or change a PAM configuration."""

    rotation_fields = ROTATION_FIELDS[PamConfiguration]

    class Meta:
        model = PamConfiguration
        fields = list(EDITABLE_FIELDS[PamConfiguration])
        widgets = {
            **SCHEDULE_WIDGETS,
            "port_mapping": forms.Textarea(attrs={"rows": 3}),
            "window_start": forms.TimeInput(attrs={"type": "time"}),
            "window_end": forms.TimeInput(attrs={"type": "time"}),
        }

    complexity_field = "default_password_complexity"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A configuration's schedule is the default itself: it cannot "use the default".
        schedule_type = self.fields["schedule_type"]
        schedule_type.choices = [
            choice for choice in schedule_type.choices if choice[0] != schedules.USE_DEFAULT
        ]
        # A form (or import, API) that leaves the window out keeps the model's defaults: no window.
        for name in WINDOW_FIELDS:
            field = self.fields[name]
            if self.is_bound and field.widget.value_omitted_from_data(
                self.data, self.files, self.add_prefix(name)
            ):
                field.disabled = True  # left out: the stored value stays, and it is not "changed"

    def layout(self) -> list:
        return [
            Fieldset("General", "title", "environment", "gateway", "application_folder"),
            Fieldset("Network", "network_id", "network_cidr", "port_mapping"),
            Fieldset(
                "Rotation defaults",
                "rotation_enabled",
                schedule_fieldset(),
                self.complexity_fieldset(),
                "manual_rotation_resets_schedule",
            ),
            Fieldset("Heartbeat", "heartbeat_hours", "rotate_when_drifted"),
            Fieldset("Window and notice", *WINDOW_FIELDS),
        ]


class DirectoryForm(RecordForm):
    """Create or change a PAM directory, and optionally the PAM user that administers it, in one save."""

    secret_fields = ("new_credential_password", "credential_password")
    form_only_fields = (
        "credential_password",
        "new_credential_login",
        "new_credential_dn",
        "new_credential_password",
        "new_credential_title",
    )
    new_credential_login = forms.CharField(
        label="Login",
        required=False,
        max_length=256,
        help_text="To create the administrative credential here instead of picking one.",
    )
    new_credential_dn = forms.CharField(label="Distinguished name", required=False, max_length=1024)
    credential_password = forms.CharField(
        label="Administrative credential's password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Needed, with a second factor, to change where the credential is sent "
        "(address, port, TLS, certificate checks, CA, type, or which credential).",
    )
    new_credential_password = forms.CharField(
        label="Password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    new_credential_title = forms.CharField(
        label="Title",
        required=False,
        max_length=200,
        help_text="Blank: the login and the directory's title, such as “rotator (Corp LDAP)”.",
    )

    class Meta:
        model = PamDirectory
        fields = list(EDITABLE_FIELDS[PamDirectory])
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
        credential.help_text = "A PAM user of the same configuration; or create one below."
        self.new_credential: PamUser | None = None

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
                "credential_password",
            ),
            Fieldset(
                "Administration",
                "administrative_credential",
                Div(
                    HTML('<p class="fw-semibold mb-1">Or create the administrative credential</p>'),
                    "new_credential_login",
                    "new_credential_dn",
                    "new_credential_password",
                    "new_credential_title",
                    css_class="new-credential border-top pt-2",
                    css_id="new-credential",
                ),
                HTML('{% include "records/_test_unsaved_connection.html" %}'),
            ),
        ]

    def clean(self):
        cleaned = super().clean()
        login = cleaned.get("new_credential_login", "").strip()
        if not login:
            return cleaned
        if cleaned.get("administrative_credential"):
            self.add_error("new_credential_login", "Pick an existing credential or create one, not both.")
            return cleaned
        credential = self.credential_from(cleaned, login)
        try:
            credential.full_clean(exclude=[] if credential.configuration_id else ["configuration"])
        except ValidationError as exc:
            names = {"login": "new_credential_login", "distinguished_name": "new_credential_dn"}
            for field, messages in exc.message_dict.items():
                self.add_error(names.get(field, "new_credential_title"), messages)
            return cleaned
        self.new_credential = credential
        cleaned["administrative_credential"] = credential
        return cleaned

    def credential_from(self, cleaned: dict, login: str) -> PamUser:
        """Return the unsaved PAM user the new-credential fields describe (never rotated: it administers)."""
        title = cleaned.get("new_credential_title", "").strip() or f"{login} ({cleaned.get('title', '')})"
        credential = PamUser(
            title=title[:200],
            configuration=cleaned.get("configuration"),
            login=login,
            distinguished_name=cleaned.get("new_credential_dn", ""),
            rotation_enabled=False,
            schedule_type=schedules.ON_DEMAND,
        )
        credential.set_password(cleaned.get("new_credential_password", ""))
        return credential


def fill_in_dn(form: forms.ModelForm) -> None:
    """Run the save path's DN lookup (records.changes.fill_in_dn) on the form's user before the model checks it."""
    if "distinguished_name" not in form.cleaned_data:
        return
    form.instance = forms.models.construct_instance(
        form, form.instance, form._meta.fields, form._meta.exclude
    )
    try:
        changes.fill_in_dn(form.instance)
    except ValidationError as exc:
        form.add_error(None, exc)
    else:
        form.cleaned_data["distinguished_name"] = form.instance.distinguished_name


class UserForm(RecordForm):
    """Create or change a PAM user; the password is write-only."""

    rotation_fields = ROTATION_FIELDS[PamUser]
    secret_fields = ("password",)
    complexity_field = "password_complexity"
    complexity_optional = True

    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Leave blank to keep the stored password.",
    )

    class Meta:
        model = PamUser
        fields = list(EDITABLE_FIELDS[PamUser])
        widgets = {**SCHEDULE_WIDGETS, "resource": ConfigurationSelect}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["configuration"].queryset = PamConfiguration.objects.order_by("title")
        resource = self.fields["resource"]
        resource.queryset = PamDirectory.objects.select_related("configuration").order_by("title")
        resource.label_from_instance = lambda directory: f"{directory.title} — {directory.configuration}"
        if self.instance.pk is None:
            self.fields["password"].help_text = "The account's current password, if you know it."
        # A directory belongs to one configuration: choosing it is enough.
        self.fields["configuration"].required = False
        self.fields["configuration"].help_text = "Blank: the configuration of the directory chosen below."

    def clean(self):
        chosen = self.cleaned_data
        if not chosen.get("configuration") and chosen.get("resource"):
            chosen["configuration"] = chosen["resource"].configuration
        elif not chosen.get("configuration") and "configuration" not in self.errors:
            self.add_error("configuration", "Choose a configuration, or a directory (it implies its own).")
        return super().clean()

    def _post_clean(self):
        fill_in_dn(self)
        super()._post_clean()

    def layout(self) -> list:
        return [
            Fieldset(
                "Account", "title", "configuration", "login", "password", "distinguished_name", "managed"
            ),
            Fieldset(
                "Rotation", "rotation_enabled", "resource", schedule_fieldset(), self.complexity_fieldset()
            ),
        ]

    def save(self, commit: bool = True) -> PamUser:
        user = super().save(commit=False)
        if self.cleaned_data.get("password"):
            user.set_password(self.cleaned_data["password"])
        if commit:
            user.save()
        return user


FORMS = {PamConfiguration: ConfigurationForm, PamDirectory: DirectoryForm, PamUser: UserForm}
