"""Admin for the PAM records; encrypted fields are never shown or editable here."""

from django import forms
from django.contrib import admin

from audit.actors import Actor
from records import changes, repoint
from records.forms import fill_in_dn
from records.models import PamConfiguration, PamDirectory, PamUser


class AuditedAdmin(admin.ModelAdmin):
    """Save and delete through records.changes, so admin edits reschedule and land in the audit log."""

    def save_model(self, request, obj, form, change):
        changes.save_record(
            obj,
            created=not change,
            changed=form.changed_data,
            actor=Actor.from_request(request),
            announced_fields=[f"{name} (admin)" for name in form.changed_data] or ["(admin)"],
        )

    def delete_model(self, request, obj):
        changes.delete_record(obj, actor=Actor.from_request(request))

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


@admin.register(PamConfiguration)
class PamConfigurationAdmin(AuditedAdmin):
    list_display = ["title", "environment", "gateway", "network_cidr", "rotation_enabled", "schedule_type"]
    list_filter = ["environment", "rotation_enabled", "schedule_type"]
    search_fields = ["title", "network_id", "network_cidr", "application_folder"]


@admin.register(PamDirectory)
class PamDirectoryAdmin(AuditedAdmin):
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

    def get_readonly_fields(self, request, obj=None):
        # Where a stored credential is sent changes on the directory's page, with the credential retyped.
        return [*repoint.DIRECTORY_CREDENTIAL, *(repoint.DIRECTORY_DESTINATION if obj else ())]


class PamUserAdminForm(forms.ModelForm):
    """The admin's user form: a missing DN is looked up from the login, as on every other entry point."""

    def _post_clean(self):
        fill_in_dn(self)
        super()._post_clean()


@admin.register(PamUser)
class PamUserAdmin(AuditedAdmin):
    form = PamUserAdminForm
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

    def get_readonly_fields(self, request, obj=None):
        # Which directory a stored password is verified on changes on the user's page, password retyped.
        return [*self.readonly_fields, *(repoint.USER_DESTINATION if obj else ())]
