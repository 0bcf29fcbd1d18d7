"""Cursor pages: a page costs the same at the millionth row as at the first."""

from __future__ import annotations

from rest_framework.pagination import CursorPagination


class IdCursorPagination(CursorPagination):
    """Records and attempts in id order."""

    ordering = "id"
    page_size = 50
    max_page_size = 200
    page_size_query_param = "page_size"


class NewestFirstPagination(CursorPagination):
    """Audit events newest first, as the audit log shows them."""

    ordering = ("-created_at", "-id")
    page_size = 50
    max_page_size = 200
    page_size_query_param = "page_size"
