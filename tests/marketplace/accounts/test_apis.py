import pytest

pytestmark = pytest.mark.django_db


def test_a_password_buys_a_token_that_authenticates(alice, api):
    response = api.post(
        "/api/v1/auth/token/", {"username": "alice", "password": "alice-pass-123", "name": "laptop"}
    )
    assert response.status_code == 201
    key = response.json()["token"]
    assert key.startswith("lwm_")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api.get("/api/v1/me/").json()["username"] == "alice"


def test_a_wrong_password_is_refused_by_name(alice, api):
    response = api.post("/api/v1/auth/token/", {"username": "alice", "password": "nope"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "auth:user:bad-credentials"


def test_a_missing_field_is_named_in_the_error(api):
    response = api.post("/api/v1/auth/token/", {"username": "alice"})
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("password:")


def test_tokens_are_listed_without_keys_and_a_revoked_token_stops_working(alice, client_for):
    client = client_for(alice)
    created = client.post("/api/v1/tokens/", {"name": "ci"}).json()
    listed = client.get("/api/v1/tokens/").json()
    assert {t["name"] for t in listed} == {"test", "ci"}
    assert all("token" not in t for t in listed)
    other = client_for(alice)
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {created['token']}")
    assert other.get("/api/v1/me/").status_code == 200
    assert client.delete(f"/api/v1/tokens/{created['id']}/").status_code == 204
    assert other.get("/api/v1/me/").status_code == 401


def test_anonymous_writes_are_refused(api):
    assert api.post("/api/v1/tokens/", {"name": "x"}).status_code == 401
