"""GET /healthz reports the database and Redis."""
from tests.conftest import REDIS_URL


def test_healthz_reports_every_store_ok(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok", "redis": "ok" if REDIS_URL else "disabled"}


def test_healthz_needs_no_token(client):
    assert client.get("/healthz", headers={"Authorization": "Bearer junk"}).status_code == 200


def test_healthz_is_503_when_redis_is_unreachable(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens on port 1

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert (body["code"], body["database"], body["redis"]) == ("unhealthy", "ok", "error")
