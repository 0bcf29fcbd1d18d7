"""The Django admin shows scripts and their runs read-only: attaching goes through the audited pages."""

from __future__ import annotations

from django.contrib import admin

from scripts.models import PostRotationScript, ScriptRun


class ReadOnlyAdmin(admin.ModelAdmin):
    """Look, never change: script changes are audited record changes made on the records' pages."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(PostRotationScript)
class PostRotationScriptAdmin(ReadOnlyAdmin):
    list_display = ("file", "command", "order", "user", "directory", "configuration")
    search_fields = ("file",)


@admin.register(ScriptRun)
class ScriptRunAdmin(ReadOnlyAdmin):
    list_display = ("attempt", "round", "position", "file", "state", "exit_code", "started_at")
    list_filter = ("state",)
    exclude = ("stdout_encrypted", "stderr_encrypted")  # output only on the attempt page, to whom may reveal
