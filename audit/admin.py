"""Admin for the audit log: listed and shown, never added, changed or deleted."""

from django.contrib import admin

from audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "event", "outcome", "actor_name", "record_type", "record_title", "message"]
    list_filter = ["event", "category", "outcome", "record_type"]
    search_fields = ["record_title", "actor_name", "message"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
