"""Cursor pages: a page costs the same at the millionth row as at the first."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.pagination import CursorPagination


class _Cursor(CursorPagination):
    """A malformed cursor or page size is the caller's mistake: 400, not 404 or a silent default."""

    page_size = 50
    max_page_size = 200
    page_size_query_param = "page_size"

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except exceptions.NotFound:
            raise exceptions.ValidationError({"cursor": ["The cursor is not valid."]}) from None

    def get_page_size(self, request):
        text = request.query_params.get(self.page_size_query_param)
        if text is not None and not (text.isascii() and text.isdigit() and 1 <= int(text) <= 10**6):
            raise exceptions.ValidationError({"page_size": ["A whole number from 1."]})
        return super().get_page_size(request)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": 10**6}
        return parameters


class IdCursorPagination(_Cursor):
    """Records and attempts in id order."""

    ordering = "id"


class NewestFirstPagination(_Cursor):
    """Audit events newest first, as the audit log shows them."""

    ordering = ("-created_at", "-id")
