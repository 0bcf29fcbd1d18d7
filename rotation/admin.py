"""Admin for rotation records: read-only, secrets never shown; django-q2 schedules superuser-only."""

from django.contrib import admin
from django_q import admin as q_admin
from django_q.models import Schedule

from accounts import policy
from rotation.models import PasswordVersion, RotationAttempt


class ReadOnlyAdmin(admin.ModelAdmin):
    """An admin that lists and shows rows but never adds, changes or deletes them."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(RotationAttempt)
class RotationAttemptAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "user",
        "state",
        "trigger",
        "requested_by_name",
        "created_at",
        "finished_at",
        "error_class",
    ]
    list_filter = ["state", "trigger", "error_class"]
    search_fields = ["user__title", "user__login", "requested_by_name", "error_message"]
    list_select_related = ["user"]
    fields = [
        "user",
        "state",
        "trigger",
        "requested_by_name",
        "self_change",
        "slot",
        "try_number",
        "directory_changed",
        "created_at",
        "started_at",
        "finished_at",
        "error_class",
        "error_code",
        "error_message",
    ]
    readonly_fields = fields


@admin.register(PasswordVersion)
class PasswordVersionAdmin(ReadOnlyAdmin):
    list_display = ["user", "valid_from", "replaced_at", "attempt"]
    search_fields = ["user__title", "user__login"]
    list_select_related = ["user"]
    fields = ["user", "valid_from", "replaced_at", "attempt"]
    readonly_fields = fields


class SuperuserScheduleAdmin(q_admin.ScheduleAdmin):
    """Whoever edits a django-q2 schedule can run any importable function: superusers only."""

    def has_module_permission(self, request):
        return policy.can(request, policy.Action.ADMIN_SITE)

    def has_view_permission(self, request, obj=None):
        return policy.can(request, policy.Action.ADMIN_SITE)

    def has_add_permission(self, request):
        return policy.can(request, policy.Action.ADMIN_SITE)

    def has_change_permission(self, request, obj=None):
        return policy.can(request, policy.Action.ADMIN_SITE)

    def has_delete_permission(self, request, obj=None):
        return policy.can(request, policy.Action.ADMIN_SITE)


if admin.site.is_registered(Schedule):
    admin.site.unregister(Schedule)
admin.site.register(Schedule, SuperuserScheduleAdmin)
