"""The REST endpoints under /api/v1/: records, rotation, credentials and the audit log."""

from __future__ import annotations

import datetime as dt
import re

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from accounts import policy
from accounts.policy import Action
from api import permissions, serializers
from api.credentials import read_credential
from api.pagination import NewestFirstPagination
from audit import events
from audit.actors import Actor
from audit.models import AuditEvent, Outcome
from records import filters
from records.models import DirectoryType, PamConfiguration, PamDirectory, PamUser, RotationStatus
from rotation import services
from rotation.models import AttemptState, RotationAttempt

UID_PATTERN = "[A-Za-z0-9_-]{1,64}"
RECORD_PERMISSIONS = [IsAuthenticated, permissions.Policy]
ERRORS = {
    code: OpenApiResponse(serializers.ErrorSerializer, description=text)
    for code, text in [
        (400, "Malformed or invalid request"),
        (401, "No, an invalid, an expired or a revoked token"),
        (403, "Not allowed for this caller (role, scope or network)"),
        (404, "No such record"),
        (429, "Too many requests for this token; see Retry-After"),
    ]
}


def _param(name: str, description: str, kind=OpenApiTypes.STR, enum=None) -> OpenApiParameter:
    return OpenApiParameter(name, kind, OpenApiParameter.QUERY, description=description, enum=enum)


def _query_value_valid(parameter: OpenApiParameter, value: str) -> bool:
    if parameter.enum:
        return value in parameter.enum
    if parameter.type == OpenApiTypes.INT:
        return value.isascii() and value.lstrip("-").isdigit() and len(value) < 19
    if parameter.type == OpenApiTypes.DATE:
        return bool(re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value)) and _is_date(value)
    return True


def _is_date(value: str) -> bool:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


class QueryChecked:
    """A list whose documented query values are checked: a value its type or enum refuses is a 400."""

    query_parameters: list[OpenApiParameter] = []

    def list(self, request, *args, **kwargs):
        problems = {
            parameter.name: [f"Not a valid value for {parameter.name}."]
            for parameter in self.query_parameters
            if parameter.name in request.query_params
            and not all(
                _query_value_valid(parameter, v) for v in request.query_params.getlist(parameter.name)
            )
        }
        if problems:
            raise exceptions.ValidationError(problems)
        return super().list(request, *args, **kwargs)


class RecordViewSet(QueryChecked, viewsets.ModelViewSet):
    """List, read, create, change and delete records with the UI's roles and validation."""

    permission_classes = RECORD_PERMISSIONS
    lookup_field = "uid"
    lookup_value_regex = UID_PATTERN

    def perform_destroy(self, instance):
        serializers.delete_record(instance, request=self.request)


def record_docs(serializer) -> dict:
    """Return the schema of a record viewset's detail actions, errors included."""
    return {
        "retrieve": extend_schema(responses={200: serializer, **ERRORS}),
        "create": extend_schema(responses={201: serializer, **ERRORS}),
        "update": extend_schema(responses={200: serializer, **ERRORS}),
        "partial_update": extend_schema(responses={200: serializer, **ERRORS}),
        "destroy": extend_schema(
            responses={204: None, 409: OpenApiResponse(serializers.ErrorSerializer, "Still in use"), **ERRORS}
        ),
    }


CONFIGURATION_FILTERS = [_param("q", "Search in title, network ID and application folder")]


@extend_schema_view(
    list=extend_schema(parameters=CONFIGURATION_FILTERS),
    **record_docs(serializers.ConfigurationSerializer),
)
class ConfigurationViewSet(RecordViewSet):
    """PAM configurations."""

    query_parameters = CONFIGURATION_FILTERS

    serializer_class = serializers.ConfigurationSerializer
    queryset = PamConfiguration.objects.all()

    def get_queryset(self):
        # The list pages' filters (records.filters), so that the API and the UI select the same records.
        queryset = permissions.scoped(self.request, super().get_queryset(), "pk")
        queryset, _ = filters.filter_configurations(self.request.query_params, queryset)
        return queryset


DIRECTORY_FILTERS = [
    _param("q", "Search in title, hostname and domain"),
    _param("configuration", "A configuration's id", OpenApiTypes.INT),
    _param("type", "Directory type", enum=DirectoryType.values),
]


@extend_schema_view(
    list=extend_schema(parameters=DIRECTORY_FILTERS),
    **record_docs(serializers.DirectorySerializer),
)
class DirectoryViewSet(RecordViewSet):
    """PAM directories."""

    query_parameters = DIRECTORY_FILTERS

    serializer_class = serializers.DirectorySerializer
    queryset = PamDirectory.objects.select_related("configuration", "administrative_credential")

    def get_queryset(self):
        queryset = permissions.scoped(self.request, super().get_queryset())
        queryset, _ = filters.filter_directories(self.request.query_params, queryset)
        return queryset


USER_FILTERS = [
    _param("q", "Search in title, login and DN"),
    _param("configuration", "A configuration's id", OpenApiTypes.INT),
    _param("directory", "A directory's id", OpenApiTypes.INT),
    _param("type", "Directory type", enum=DirectoryType.values),
    _param("status", "Last rotation's outcome", enum=RotationStatus.values),
    _param("rotation", "Rotation on (nothing blocks it) or off", enum=["on", "off"]),
    _param("overdue", "1: only overdue accounts", enum=["1"]),
]


@extend_schema_view(
    list=extend_schema(parameters=USER_FILTERS),
    **record_docs(serializers.UserSerializer),
)
class UserViewSet(RecordViewSet):
    """PAM users; rotate one, or read its credential."""

    query_parameters = USER_FILTERS

    serializer_class = serializers.UserSerializer
    queryset = PamUser.objects.select_related("configuration", "resource")

    def get_queryset(self):
        queryset = permissions.scoped(self.request, super().get_queryset())
        queryset, _ = filters.filter_users(self.request.query_params, queryset)
        return queryset

    def _account(self, uid: str, action: str) -> PamUser:
        """Return the account for an action (accounts.policy): 403, or 404 for one out of sight."""
        users = PamUser.objects.select_related("configuration", "resource")
        return policy.get_object(self.request, users, action, uid=uid)

    @extend_schema(
        request=None,
        responses={
            202: serializers.AttemptSerializer,
            409: OpenApiResponse(serializers.RefusedSerializer, "Refused: blocked or already rotating"),
            **ERRORS,
        },
    )
    @action(detail=True, methods=["post"], permission_classes=[IsAuthenticated])
    def rotate(self, request, uid=None):
        """Queue a rotation of this account; 202 with the attempt, 409 when it is refused."""
        pam_user = self._account(uid, Action.ROTATE)
        attempt = services.request_rotation(pam_user, actor=Actor.from_request(request))
        attempt.refresh_from_db()
        body = serializers.AttemptSerializer(attempt).data
        if attempt.state == AttemptState.REFUSED:
            return Response(
                {"detail": attempt.error_message, "attempt": body}, status=status.HTTP_409_CONFLICT
            )
        return Response(body, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={200: serializers.CredentialSerializer, **ERRORS})
    @action(detail=True, methods=["get"], permission_classes=[IsAuthenticated])
    def credential(self, request, uid=None):
        """Return the account's login, DN and current password; the read is audited."""
        pam_user = self._account(uid, Action.READ_API)
        secret = read_credential(pam_user, request)
        body = {
            "uid": pam_user.uid,
            "title": pam_user.title,
            "login": pam_user.login,
            "distinguished_name": pam_user.distinguished_name,
            "password": secret["password"],
            "last_rotated_at": pam_user.last_rotated_at,
            "next_rotation_at": pam_user.next_rotation_at,
        }
        return Response(serializers.CredentialSerializer(body).data)


@extend_schema_view(retrieve=extend_schema(responses={200: serializers.AttemptSerializer, **ERRORS}))
class AttemptViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Rotation attempts, to follow a requested rotation."""

    serializer_class = serializers.AttemptSerializer
    queryset = RotationAttempt.objects.select_related("user")
    lookup_value_regex = "[0-9]+"
    permission_classes = [IsAuthenticated]

    def get_object(self):
        queryset = self.filter_queryset(self.get_queryset())
        return policy.get_object(self.request, queryset, Action.VIEW_ATTEMPTS, pk=self.kwargs["pk"])


AUDIT_FILTERS = [
    _param("from", "First day (YYYY-MM-DD)", OpenApiTypes.DATE),
    _param("to", "Last day (YYYY-MM-DD)", OpenApiTypes.DATE),
    _param("event", "Event name", enum=list(AuditEvent.LABELS)),
    _param("outcome", "ok or fail", enum=Outcome.values),
    _param("actor", "Who (user name, or application:NAME)"),
    _param(
        "configuration",
        "Events about a configuration's id, its directories and users",
        OpenApiTypes.INT,
    ),
    _param("directory", "Events about a directory's id and its users", OpenApiTypes.INT),
    _param("account", "Events about a PAM user's id", OpenApiTypes.INT),
    _param("q", "Free-text search"),
]


@extend_schema_view(
    list=extend_schema(
        parameters=AUDIT_FILTERS,
        responses={200: serializers.AuditEventSerializer(many=True), **ERRORS},
    )
)
class AuditEventViewSet(QueryChecked, mixins.ListModelMixin, viewsets.GenericViewSet):
    """The audit log, newest first, with the audit page's filters."""

    query_parameters = AUDIT_FILTERS

    serializer_class = serializers.AuditEventSerializer
    queryset = AuditEvent.objects.all()
    permission_classes = RECORD_PERMISSIONS
    policy_actions = {"GET": Action.VIEW_AUDIT, "HEAD": Action.VIEW_AUDIT, "OPTIONS": Action.VIEW_AUDIT}
    pagination_class = NewestFirstPagination

    def get_queryset(self):
        scoped = policy.scope_events(self.request, super().get_queryset())
        return events.AuditFilters.from_query(self.request.query_params).apply(scoped)
