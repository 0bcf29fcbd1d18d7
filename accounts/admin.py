"""Admin: superusers only, asked through accounts.policy; sign-in profiles are read-only there."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User

from accounts import policy
from accounts.models import Grant, Profile
from audit.actors import Actor
from audit.events import record_event
from audit.models import AuditEvent, Category, Outcome


def admin_site_permission(request) -> bool:
    """Let into the Django admin whom the policy lets "use the Django admin" (verified superusers)."""
    return policy.can(request, policy.Action.ADMIN_SITE)


# Every admin page asks AdminSite.has_permission first: the one policy decides, not is_staff.
admin.site.has_permission = admin_site_permission


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "source"]
    list_filter = ["source"]
    search_fields = ["user__username"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Grant)
class GrantAdmin(admin.ModelAdmin):
    """Read-only here: grants are given on the people page, which audits them."""

    list_display = ["__str__", "role", "all_configurations", "created_at"]
    list_filter = ["role", "all_configurations"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class AuditedUserAdmin(UserAdmin):
    """Django's user admin (superusers only, by the policy's gate), with every add and change audited."""

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        event = AuditEvent.ROLE_CHANGED if change else AuditEvent.PERSON_ADDED
        fields = ", ".join(name for name in form.changed_data if "password" not in name) or "password"
        record_event(
            event,
            actor=Actor.from_request(request),
            outcome=Outcome.OK,
            category=Category.SECURITY,
            message=f"{obj.get_username()} {'changed' if change else 'added'} in the Django admin: {fields}",
        )


if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, AuditedUserAdmin)
