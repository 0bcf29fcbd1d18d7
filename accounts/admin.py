"""Admin: superusers only, asked through accounts.policy; sign-in profiles are read-only there."""

from __future__ import annotations

from django.contrib import admin

from accounts import policy
from accounts.models import Grant, Profile


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
