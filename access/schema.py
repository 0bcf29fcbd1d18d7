"""OpenAPI descriptions of the access API's bodies (access/api.py validates with its forms)."""

from __future__ import annotations

from rest_framework import serializers

from access.models import TEN_YEARS, AccessRequest, EndReason, RequestState


class CheckOutBody(serializers.Serializer):
    ttl = serializers.IntegerField(min_value=1, max_value=TEN_YEARS, required=False, allow_null=True)


class CheckInBody(serializers.Serializer):
    force = serializers.BooleanField(required=False, help_text="An Administrator ends someone else's.")


class CheckOutOut(serializers.Serializer):
    id = serializers.IntegerField()
    account = serializers.IntegerField()
    login = serializers.CharField()
    pool = serializers.CharField(allow_null=True)
    holder = serializers.CharField()
    lease_id = serializers.CharField()
    expires_at = serializers.DateTimeField()
    max_expires_at = serializers.DateTimeField()
    ttl = serializers.IntegerField()
    ended_at = serializers.DateTimeField(allow_null=True)
    end_reason = serializers.ChoiceField(choices=[*EndReason.values, ""], allow_blank=True)


class CheckOutWithPassword(CheckOutOut):
    password = serializers.CharField()


class AccessRequestBody(serializers.ModelSerializer):
    account = serializers.IntegerField(help_text="The account's id.")

    class Meta:
        model = AccessRequest
        fields = ["account", "reason", "wanted_minutes"]


class DecisionBody(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["approve", "deny"])
    comment = serializers.CharField(max_length=500, required=False, allow_blank=True)
    minutes = serializers.IntegerField(min_value=1, max_value=7 * 24 * 60, required=False, allow_null=True)


class BreakGlassBody(serializers.Serializer):
    justification = serializers.CharField(max_length=500)
    minutes = serializers.IntegerField(min_value=1, max_value=240)


class AccessRequestOut(serializers.Serializer):
    id = serializers.IntegerField()
    account = serializers.IntegerField()
    requester = serializers.CharField()
    reason = serializers.CharField()
    wanted_minutes = serializers.IntegerField()
    state = serializers.ChoiceField(choices=RequestState.choices)
    break_glass = serializers.BooleanField()
    decided_by = serializers.CharField(allow_null=True)
    comment = serializers.CharField(allow_blank=True)
    granted_until = serializers.DateTimeField(allow_null=True)


class BreakGlassOut(AccessRequestOut):
    password = serializers.CharField()
