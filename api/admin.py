"""Admin for applications and tokens: digests are never shown, tokens are issued in the app's pages."""

from django.contrib import admin

from api import services
from api.models import Application, Token
from audit.actors import Actor


class TokenInline(admin.TabularInline):
    model = Token
    fields = ("hint", "name", "created_at", "expires_at", "revoked_at", "last_used_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Application)
class ApplicationAdmin(admin.ModelAdmin):
    list_display = ("name", "is_active", "expires_at", "created_at")
    readonly_fields = ("created_by", "created_by_name", "created_at")
    filter_horizontal = ("configurations",)
    inlines = [TokenInline]

    def has_add_permission(self, request):
        return False  # created with its first token through the pages or pam_application

    def has_delete_permission(self, request, obj=None):
        return False  # turned off instead, so that the audit log keeps naming it

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        services.record_application_change(
            form.instance,
            [f"{name} (admin)" for name in form.changed_data],
            actor=Actor.from_request(request),
        )


@admin.register(Token)
class TokenAdmin(admin.ModelAdmin):
    """Read-only: a token is created (shown once) and revoked through the audited pages and command."""

    list_display = ("hint", "owner_name", "name", "created_at", "expires_at", "revoked_at", "last_used_at")
    fields = ("hint", "application", "user", "name", "created_at", "expires_at", "revoked_at", "last_used_at")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
