"""The API answers as its schema says: JSON errors on unknown paths, 400 for malformed query values."""

from __future__ import annotations

import pytest

from api import services


@pytest.fixture
def bearer(alice):
    _token, clear = services.issue_token(user=alice, actor=alice)
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
