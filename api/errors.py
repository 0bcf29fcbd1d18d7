"""Errors as ``{"detail": ...}`` (and ``{"errors": [...]}`` on the Vault paths), never a 500."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


def validation_detail(error: DjangoValidationError) -> exceptions.ValidationError:
    """Return a model's ValidationError as DRF's, field by field."""
    if hasattr(error, "error_dict"):
        return exceptions.ValidationError(error.message_dict)
    return exceptions.ValidationError({"non_field_errors": error.messages})


def _as_api_exception(exc):
    if isinstance(exc, DjangoValidationError):
        return validation_detail(exc)
    if isinstance(exc, ProtectedError):
        return Conflict("The record is still in use: delete or move its directories and users first.")
    if isinstance(exc, RequestDataTooBig):
        return exceptions.ParseError("The request body is too large.")
    if isinstance(exc, SuspiciousOperation):
        return exceptions.ParseError("The request was refused as malformed.")
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    return exc


def api_exception_handler(exc, context):
    """Answer every API error as ``{"detail": "..."}``; field errors also under ``"errors"``."""
    exc = _as_api_exception(exc)
    response = exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(exc, exceptions.ValidationError):
        errors = data if isinstance(data, dict) else {"non_field_errors": data}
        # Each field's problems as a list, as the schema says (a view may raise {"detail": "..."}).
        errors = {
            field: problems if isinstance(problems, list | dict) else [problems]
            for field, problems in errors.items()
        }
        response.data = {"detail": "The request is not valid.", "errors": errors}
    elif not (isinstance(data, dict) and "detail" in data):
        response.data = {"detail": str(data)}
    return response


def vault_exception_handler(exc, context):
    """Answer in Vault's error shape, ``{"errors": ["..."]}``."""
    response = api_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        messages = ["permission denied", str(data.get("detail", ""))]
    else:
        messages = [str(data.get("detail", ""))]
    for field, problems in (data.get("errors") or {}).items():
        problems = problems if isinstance(problems, list) else [problems]
        messages.extend(f"{field}: {problem}" for problem in problems)
    headers = {
        name: response[name] for name in ("Retry-After", "WWW-Authenticate") if response.has_header(name)
    }
    return Response({"errors": messages}, status=response.status_code, headers=headers)


def page_not_found(request, exception=None):
    """Answer an unknown path under /api/ as ``{"detail": ...}`` (Vault's shape under /v1/); HTML elsewhere."""
    from django.http import JsonResponse
    from django.views import defaults

    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    if request.path.startswith("/v1/"):
        return JsonResponse({"errors": []}, status=404)
    return defaults.page_not_found(request, exception)
