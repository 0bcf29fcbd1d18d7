"""Admin for the PAM records; encrypted fields are never shown or editable here."""

from django.contrib import admin

from records.models import PamConfiguration, PamDirectory, PamUser


@admin.register(PamConfiguration)
class PamConfigurationAdmin(admin.ModelAdmin):
    list_display = ["title", "environment", "gateway", "network_cidr", "rotation_enabled", "schedule_type"]
    list_filter = ["environment", "rotation_enabled", "schedule_type"]
    search_fields = ["title", "network_id", "network_cidr", "application_folder"]


@admin.register(PamDirectory)
class PamDirectoryAdmin(admin.ModelAdmin):
    list_display = [
        "title",
        "directory_type",
        "hostname",
        "port",
        "use_ssl",
        "verify_certificate",
        "configuration",
    ]
    list_filter = ["directory_type", "use_ssl", "start_tls", "verify_certificate", "configuration"]
    search_fields = ["title", "hostname", "domain_name", "user_match"]
    list_select_related = ["configuration"]
    raw_id_fields = ["administrative_credential"]


@admin.register(PamUser)
class PamUserAdmin(admin.ModelAdmin):
    list_display = [
        "title",
        "login",
        "configuration",
        "resource",
        "rotation_enabled",
        "managed",
        "rotation_status",
        "last_rotated_at",
        "next_rotation_at",
    ]
    list_filter = [
        "rotation_status",
        "rotation_enabled",
        "managed",
        "configuration",
        "resource__directory_type",
    ]
    search_fields = ["title", "login", "distinguished_name"]
    list_select_related = ["configuration", "resource"]
    exclude = ["password_encrypted"]
    readonly_fields = ["last_rotated_at", "next_rotation_at", "rotation_status", "rotation_error"]
