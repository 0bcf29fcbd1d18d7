"""The API answers as its schema says: JSON errors on unknown paths, 400 for malformed query values."""

from __future__ import annotations

import pytest

from api import services
from audit.actors import Actor


@pytest.fixture
def bearer(alice):
    _token, clear = services.issue_token(user=alice, actor=Actor.person(alice))
    return {"HTTP_AUTHORIZATION": f"Bearer {clear}"}


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/directories/+/", "/api/v1/users/%C8%BA/", "/api/v1/nothing/"])
def test_an_unknown_path_under_the_api_is_a_json_404(client, bearer, path):
    response = client.get(path, **bearer)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [
        "cursor=garbage",
        "page_size=null",
        "page_size=0",
        "page_size=-1",
        "page_size=1.5",
        "page_size=" + "9" * 30,
    ],
)
def test_a_malformed_cursor_or_page_size_is_a_400(client, bearer, query):
    for path in ("/api/v1/users/", "/api/v1/audit-events/", "/api/v1/configurations/"):
        response = client.get(f"{path}?{query}", **bearer)
        assert response.status_code == 400, (path, query)
        assert "detail" in response.json()


@pytest.mark.django_db
def test_a_good_page_size_still_pages(client, bearer):
    assert client.get("/api/v1/users/?page_size=2", **bearer).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/api/v1/audit-events/", "to="),
        ("/api/v1/audit-events/", "from=2026-02-30"),
        ("/api/v1/audit-events/", "from=%C3%B29"),
        ("/api/v1/audit-events/", "outcome=maybe"),
        ("/api/v1/audit-events/", "account=abc"),
        ("/api/v1/users/", "rotation=sideways"),
        ("/api/v1/users/", "status=null"),
        ("/api/v1/users/", "overdue=2"),
        ("/api/v1/users/", "configuration=" + "9" * 30),
        ("/api/v1/directories/", "type=nonsense"),
    ],
)
def test_a_query_value_its_schema_refuses_is_a_400(client, bearer, path, query):
    response = client.get(f"{path}?{query}", **bearer)
    assert response.status_code == 400, (path, query)
    assert list(response.json()["errors"]) == [query.split("=")[0]]


@pytest.mark.django_db
def test_documented_query_values_still_filter(client, bearer):
    for path, query in [
        ("/api/v1/audit-events/", "from=2026-01-01&to=2026-12-31&outcome=ok"),
        ("/api/v1/users/", "rotation=on&overdue=1&configuration=1"),
    ]:
        assert client.get(f"{path}?{query}", **bearer).status_code == 200, query


@pytest.mark.django_db
def test_an_attempt_id_that_is_not_a_number_is_a_json_404(client, bearer):
    response = client.get("/api/v1/attempts/%C3%A6%C5%93/", **bearer)
    assert response.status_code == 404 and response.json() == {"detail": "Not found."}


def test_the_schema_documents_errors_and_the_models_value_rules():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path, operations in schema["paths"].items():
        for operation in operations.values() if path.startswith("/api/") else ():
            assert {"400", "401", "403", "404", "429"} <= {str(code) for code in operation["responses"]}
    components = schema["components"]["schemas"]
    assert components["DirectoryRequest"]["properties"]["port"]["maximum"] == 65535
    assert "pattern" in components["DirectoryRequest"]["properties"]["hostname"]
    assert "" in components["ErrorClassEnum"]["enum"]
    assert "format" not in components["User"]["properties"]["schedule_time"]


def test_the_schema_and_its_pages_describe_the_vault_compatible_paths():
    from django.conf import settings
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    mount = settings.VAULT_MOUNT
    for path, method in [
        (f"/v1/{mount}/static-cred/{{name}}", "get"),
        (f"/v1/{mount}/rotate-role/{{name}}", "post"),
        (f"/v1/{mount}/library/{{name}}/check-out", "post"),
        ("/v1/auth/approle/login", "post"),
        ("/v1/auth/token/lookup-self", "get"),
        ("/v1/sys/health", "get"),
        ("/v1/sys/leases/renew", "post"),
    ]:
        assert method in paths[path], path
        assert "403" in paths[path][method]["responses"]


@pytest.mark.django_db
def test_an_empty_uid_for_a_related_record_is_refused_not_read_as_none(client, bearer):
    from tests.conftest import make_configuration, make_user

    pam_user = make_user(make_configuration(), title="Empty resource")
    response = client.patch(
        f"/api/v1/users/{pam_user.uid}/", {"resource": ""}, content_type="application/json", **bearer
    )
    assert response.status_code == 400
    assert "resource" in response.json()["errors"]
    response = client.patch(
        f"/api/v1/users/{pam_user.uid}/", {"resource": None}, content_type="application/json", **bearer
    )
    assert response.status_code != 400 or "resource" not in response.json().get("errors", {})
