"""The attach/change form of a post-rotation script: pick a file that exists, never upload one."""

from __future__ import annotations

from django import forms

from records.models import PamUser
from scripts import files
from scripts.models import PostRotationScript


class ScriptForm(forms.ModelForm):
    """Attach a file of the scripts directory to a record, with its command, credentials and order."""

    file = forms.ChoiceField(help_text="A file in the scripts directory on the worker host.")

    class Meta:
        model = PostRotationScript
        fields = ["file", "command", "additional_credentials", "order"]
        widgets = {"additional_credentials": forms.CheckboxSelectMultiple}

    def __init__(self, *args, owner, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is None:
            setattr(self.instance, self.owner_field(owner), owner)
        names = files.available()
        if self.instance.file and self.instance.file not in names:
            names.insert(0, self.instance.file)  # still listed when it became unusable since
        self.fields["file"].choices = [("", "---------")] + [(name, name) for name in names]
        configuration = self.instance.owner_configuration
        self.fields["additional_credentials"].queryset = PamUser.objects.filter(configuration=configuration)
        self.fields["additional_credentials"].required = False
        for name, field in self.fields.items():
            if name != "additional_credentials":
                field.widget.attrs["class"] = "form-select" if name == "file" else "form-control"

    @staticmethod
    def owner_field(owner) -> str:
        return type(owner).__name__.removeprefix("Pam").lower()

    def clean(self):
        cleaned = super().clean()
        try:
            self.instance.clean_credentials(cleaned.get("additional_credentials") or [])
        except forms.ValidationError as exc:
            self.add_error(None, exc)
        return cleaned
