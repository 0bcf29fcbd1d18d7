"""Audit events are append-only through the ORM, the admin and the UI; tasks go to the right gateway."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import override_settings

from audit.actors import Actor
from audit.events import record_event
from audit.models import AuditEvent
from rotation import services
from tests.conftest import make_configuration, make_directory, make_user


@pytest.fixture
def event(db):
    return record_event("record_add", message="created", outcome="ok")


def test_an_event_cannot_be_changed_through_the_orm(event):
    event.message = "rewritten"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).update(message="rewritten")
    assert AuditEvent.objects.get(pk=event.pk).message == "created"


def test_an_event_cannot_be_deleted_through_the_orm(event):
    with pytest.raises(PermissionError):
        event.delete()
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(PermissionError):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_a_superuser_cannot_add_change_or_delete_events_in_the_admin(client, event):
    admin = User.objects.create_superuser("root", "", "x-Admin-Pass-1")
    client.force_login(admin)
    change_url = f"/admin/audit/auditevent/{event.pk}/change/"
    assert client.get("/admin/audit/auditevent/").status_code == 200
    assert client.get("/admin/audit/auditevent/add/").status_code == 403
    assert client.post(change_url, {"message": "rewritten"}).status_code == 403
    assert client.post(f"/admin/audit/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    response = client.post(
        "/admin/audit/auditevent/",
        {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"},
    )
    assert response.status_code in (200, 302, 403)
    assert AuditEvent.objects.get(pk=event.pk).message == "created"


def test_deleting_the_actor_keeps_the_event_and_its_name(db):
    actor = User.objects.create_user("erin", "", "x-Pass-123456")
    record_event("record_add", actor=Actor.person(actor), outcome="ok")
    actor.delete()
    event = AuditEvent.objects.get()
    assert event.actor_name == "erin"


@pytest.mark.django_db
@override_settings(Q_CLUSTER={"sync": False})
def test_a_rotation_is_queued_for_its_configurations_gateway(django_capture_on_commit_callbacks, monkeypatch):
    sent = []
    monkeypatch.setattr("django_q.tasks.async_task", lambda func, *args, **kw: sent.append((func, args, kw)))
    configuration = make_configuration(gateway="branch-office")
    directory = make_directory(configuration=configuration)
    user = make_user(
        configuration=configuration, resource=directory, rotation_enabled=True, distinguished_name="cn=x,dc=t"
    )
    with django_capture_on_commit_callbacks(execute=True):
        attempt = services.request_rotation(user)
    assert sent == [
        (
            "rotation.tasks.rotate",
            (attempt.pk,),
            {"cluster": "branch-office", "task_name": f"rotate-attempt-{attempt.pk}", "group": "rotation"},
        )
    ]


def test_record_changes_made_in_the_django_admin_are_audited(client, db):
    from records.models import PamConfiguration

    admin_user = User.objects.create_superuser("root", "", "x-Admin-Pass-1")
    client.force_login(admin_user)
    configuration = make_configuration(title="Admin edited")
    url = f"/admin/records/pamconfiguration/{configuration.pk}/change/"
    form = client.get(url).context["adminform"].form
    data = {name: form[name].value() if form[name].value() is not None else "" for name in form.fields}
    data = {k: v for k, v in data.items() if v is not False}
    data["gateway"] = "branch-office"
    response = client.post(url, data)
    assert response.status_code == 302, response.content[:2000]
    assert PamConfiguration.objects.get(pk=configuration.pk).gateway == "branch-office"
    event = AuditEvent.objects.get(event=AuditEvent.RECORD_UPDATED, record_id=configuration.pk)
    assert event.actor == admin_user and "gateway (admin)" in event.message
    client.post(f"/admin/records/pamconfiguration/{configuration.pk}/delete/", {"post": "yes"})
    assert AuditEvent.objects.filter(event=AuditEvent.RECORD_DELETED, record_id=configuration.pk).exists()


def test_an_admin_edit_of_a_configurations_schedule_moves_its_users_next_rotation(client, db):
    from records import schedules
    from records.models import PamConfiguration, PamUser

    admin_user = User.objects.create_superuser("root", "", "x-Admin-Pass-1")
    client.force_login(admin_user)
    configuration = make_configuration(title="Admin scheduled")
    directory = make_directory(configuration=configuration)
    user = make_user(
        configuration=configuration,
        resource=directory,
        rotation_enabled=True,
        distinguished_name="cn=follows,dc=t",
        schedule_type=schedules.USE_DEFAULT,
    )
    assert PamUser.objects.get(pk=user.pk).next_rotation_at is None  # the default is on demand
    url = f"/admin/records/pamconfiguration/{configuration.pk}/change/"
    form = client.get(url).context["adminform"].form
    data = {name: form[name].value() if form[name].value() is not None else "" for name in form.fields}
    data = {k: v for k, v in data.items() if v is not False}
    data.update(schedule_type=schedules.CRON, schedule_cron="0 3 * * *", schedule_tz="UTC")
    response = client.post(url, data)
    assert response.status_code == 302, response.content[:2000]
    assert PamConfiguration.objects.get(pk=configuration.pk).schedule_type == schedules.CRON
    following = PamUser.objects.get(pk=user.pk).next_rotation_at
    assert following is not None and (following.hour, following.minute) == (3, 0)
