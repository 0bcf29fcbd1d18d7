"""JSON shapes of the API. No serializer here has a password field except CredentialSerializer."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, serializers

from accounts import policy
from api.errors import validation_detail
from audit.actors import Actor
from audit.events import EVENT_COLUMNS
from audit.models import AuditEvent
from records import changes, repoint
from records.fields import EDITABLE_FIELDS, ROTATION_FIELDS
from records.models import PamConfiguration, PamDirectory, PamUser
from rotation.models import RotationAttempt

# Schedule code can fail on odd input in ways other than ScheduleError; a 400 either way.
CLEAN_ERRORS = (ValueError, TypeError, OverflowError, KeyError, IndexError)


def typed_credential(request) -> str:
    """Return the credential the body types again (``credential_password``), or a user's new ``password``."""
    data = request.data if isinstance(request.data, dict) else {}
    typed = data.get("credential_password") or data.get("password") or ""
    return typed if isinstance(typed, str) else ""


def save_record(instance, *, request, created: bool, changed: list[str]) -> None:
    """Save a validated record through records.changes, the path every entry point uses (schedule, audit).

    A change of where a stored credential is sent needs a verified session (or a personal token)
    and ``credential_password`` in the body (records.repoint); without them it is a 403 saying so.
    """
    # The configuration the record is saved into must be in the caller's scope too (a new one: all).
    policy.require(request, policy.Action.CREATE if created else policy.Action.EDIT, instance)
    proof = repoint.Proof.of(request, typed_credential(request))
    try:
        changes.save_record(
            instance, created=created, changed=changed, proof=proof, actor=Actor.from_request(request)
        )
    except repoint.RepointRefused as exc:
        raise exceptions.PermissionDenied(exc.messages[0]) from None


def delete_record(instance, *, request) -> None:
    """Delete a record through the shared path; raises ProtectedError while it is in use."""
    changes.delete_record(instance, actor=Actor.from_request(request))


class RecordSerializer(serializers.ModelSerializer):
    """A record: the fields its UI form edits, validated by the model's full_clean()."""

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        if request is not None and not policy.can(request, policy.Action.CONFIGURE_ROTATION, self.instance):
            # The UI's rule: only "configure rotation settings" changes these fields.
            for name in ROTATION_FIELDS[self.Meta.model]:
                if name in fields:
                    fields[name].read_only = True
        return fields

    def validate(self, attrs):
        attrs = super().validate(attrs)
        instance = self.instance if self.instance is not None else self.Meta.model()
        for name, value in attrs.items():
            setattr(instance, name, value)
        try:
            changes.validate(instance)
        except DjangoValidationError as exc:
            raise validation_detail(exc) from None
        except CLEAN_ERRORS as exc:
            raise serializers.ValidationError({"non_field_errors": [str(exc)[:200]]}) from None
        self._built = instance
        return attrs

    def create(self, validated_data):
        return self._save(created=True, changed=list(validated_data))

    def update(self, instance, validated_data):
        changed = [
            name for name in validated_data if getattr(self, "_before", {}).get(name) != validated_data[name]
        ]
        return self._save(created=False, changed=changed)

    def _save(self, *, created: bool, changed: list[str]):
        instance = self._built
        save_record(instance, request=self.context["request"], created=created, changed=changed)
        return instance

    def run_validation(self, data=serializers.empty):
        if self.instance is not None:
            self._before = {name: getattr(self.instance, name, None) for name in self.Meta.fields}
        return super().run_validation(data)


class UidField(serializers.SlugRelatedField):
    """A record named by its uid; "" is refused (DRF would read it as null), as the schema's minLength says."""

    def run_validation(self, data=serializers.empty):
        if data == "":
            self.fail("does_not_exist", slug_name=self.slug_field, value=data)
        return super().run_validation(data)


def _uid_field(queryset, **kwargs) -> serializers.SlugRelatedField:
    return UidField(slug_field="uid", queryset=queryset, **kwargs)


class ConfigurationSerializer(RecordSerializer):
    class Meta:
        model = PamConfiguration
        fields = ["id", "uid", *EDITABLE_FIELDS[PamConfiguration], "created_at", "updated_at"]
        read_only_fields = ["id", "uid", "created_at", "updated_at"]


class DirectorySerializer(RecordSerializer):
    configuration = _uid_field(PamConfiguration.objects.all())
    administrative_credential = _uid_field(PamUser.objects.all(), required=False, allow_null=True)

    class Meta:
        model = PamDirectory
        fields = ["id", "uid", *EDITABLE_FIELDS[PamDirectory], "created_at", "updated_at"]
        read_only_fields = ["id", "uid", "created_at", "updated_at"]


class UserSerializer(RecordSerializer):
    configuration = _uid_field(PamConfiguration.objects.all())
    resource = _uid_field(PamDirectory.objects.all(), required=False, allow_null=True)
    password = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        max_length=1024,
        style={"input_type": "password"},
        help_text="The account's current password, when you know it; write-only, never returned.",
    )
    has_password = serializers.BooleanField(read_only=True)

    class Meta:
        model = PamUser
        fields = [
            "id",
            "uid",
            *EDITABLE_FIELDS[PamUser],
            "password",
            "has_password",
            "rotation_status",
            "rotation_error",
            "last_rotated_at",
            "next_rotation_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "id",
            "uid",
            "rotation_status",
            "rotation_error",
            "last_rotated_at",
            "next_rotation_at",
            "created_at",
            "updated_at",
        ]

    def validate(self, attrs):
        password = attrs.pop("password", "")
        attrs = super().validate(attrs)
        if password:
            self._built.set_password(password)
            self._password_changed = True
        return attrs

    def _save(self, *, created: bool, changed: list[str]):
        if getattr(self, "_password_changed", False):
            changed = [*changed, "password"]
        return super()._save(created=created, changed=changed)


class AttemptSerializer(serializers.ModelSerializer):
    """A rotation attempt: its state and plain-language outcome, never its pending password."""

    user = serializers.SlugRelatedField(slug_field="uid", read_only=True)
    requested_by = serializers.CharField(source="requested_by_name", read_only=True)
    finished = serializers.BooleanField(source="is_finished", read_only=True)

    class Meta:
        model = RotationAttempt
        fields = [
            "id",
            "user",
            "state",
            "trigger",
            "requested_by",
            "try_number",
            "created_at",
            "started_at",
            "finished_at",
            "finished",
            "error_class",
            "error_code",
            "error_message",
        ]
        read_only_fields = fields


class CredentialSerializer(serializers.Serializer):
    """The one shape with a password in it: what an application needs to log in."""

    uid = serializers.CharField()
    title = serializers.CharField()
    login = serializers.CharField()
    distinguished_name = serializers.CharField()
    password = serializers.CharField()
    last_rotated_at = serializers.DateTimeField(allow_null=True)
    next_rotation_at = serializers.DateTimeField(allow_null=True)


class AuditEventSerializer(serializers.ModelSerializer):
    """An audit event with Keeper's event name and its label."""

    label = serializers.CharField(read_only=True)

    class Meta:
        model = AuditEvent
        fields = [*EVENT_COLUMNS, "label"]
        read_only_fields = fields


class RefusedSerializer(serializers.Serializer):
    """Why a rotation request was refused, with the refused attempt."""

    detail = serializers.CharField()
    attempt = AttemptSerializer()


class ErrorSerializer(serializers.Serializer):
    """Every error: a sentence, and per-field messages for a 400."""

    detail = serializers.CharField()
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False)
