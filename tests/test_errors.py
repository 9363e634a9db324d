"""Every failure is application/problem+json (RFC 9457) with a stable `code`."""
import logging

import pytest
from sqlalchemy.exc import DataError, IntegrityError, OperationalError

from app import create_app
from app.errors import InsufficientPoints
from app.extensions import db
from tests import conftest

PROBLEM = "application/problem+json"


def assert_problem(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == PROBLEM
    body = response.get_json(force=True)
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"/problems/{code}"
    assert body["title"]
    return body


def test_unknown_path_is_404_not_found(client):
    body = assert_problem(client.get("/api/v1/no-such-thing"), 404, "not_found")

    assert "errors" not in body


def test_unknown_path_outside_the_api_is_404_problem_too(client):
    assert_problem(client.get("/favicon.ico"), 404, "not_found")


def test_wrong_method_is_405_and_keeps_allow(client):
    response = client.delete("/api/v1/me")

    assert_problem(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


def test_body_above_max_content_length_is_413(app, client):
    size = app.config["MAX_CONTENT_LENGTH"] + 1

    response = client.post("/api/v1/auth/login", data=b"{" + b" " * size + b"}",
                           content_type="application/json")

    assert_problem(response, 413, "payload_too_large")


def test_body_above_max_content_length_on_register_is_413(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 1024)

    response = client.post("/api/v1/auth/register", data=b'{"phone": "' + b"1" * 2000 + b'"}',
                           content_type="application/json")

    assert_problem(response, 413, "payload_too_large")


@pytest.mark.parametrize("body", [b"{not json", b'{"phone": "138', b"\xff\xfe", b"{'single': 'quotes'}"])
def test_malformed_json_is_400_malformed_json(client, body):
    response = client.post("/api/v1/auth/login", data=body, content_type="application/json")

    assert_problem(response, 400, "malformed_json")


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"42", b"null"])
def test_json_that_is_not_an_object_is_a_client_error(client, body):
    response = client.post("/api/v1/auth/login", data=body, content_type="application/json")

    assert response.status_code in (400, 422)
    assert response.headers["Content-Type"] == PROBLEM


def test_invalid_fields_are_422_with_an_errors_map(client):
    response = client.post("/api/v1/auth/login", json={"phone": 13800000000, "unknown": 1})

    body = assert_problem(response, 422, "validation_error")
    assert set(body["errors"]) == {"phone", "password", "unknown"}
    assert all(isinstance(messages, list) and messages for messages in body["errors"].values())


def test_nested_field_paths_are_dotted(admin, client):
    response = client.post("/api/v1/admin/staff", headers=admin.headers, json={
        "phone": "13800000009", "password": "long-enough-1", "display_name": "x",
        "role": "community_staff", "community_ids": ["ok", 5]})

    body = assert_problem(response, 422, "validation_error")
    assert "community_ids.1" in body["errors"]


def test_bad_query_parameter_is_422_naming_it(client, resident):
    response = client.get("/api/v1/wallet/entries?limit=0", headers=resident.headers)

    body = assert_problem(response, 422, "validation_error")
    assert "limit" in body["errors"]


@pytest.mark.parametrize("field", ["phone", "password"])
def test_nul_in_a_body_field_is_422_naming_it(client, field):
    body = {"phone": "13800000000", "password": "long-enough-1"}
    body[field] += "\x00"

    response = client.post("/api/v1/auth/login", json=body)

    assert field in assert_problem(response, 422, "validation_error")["errors"]


def test_nul_in_a_nested_field_names_its_path(admin, client):
    response = client.post("/api/v1/admin/staff", headers=admin.headers, json={
        "phone": "13800000009", "password": "long-enough-1", "display_name": "x",
        "role": "community_staff", "community_ids": ["ok", "b\x00d"]})

    assert "community_ids.1" in assert_problem(response, 422, "validation_error")["errors"]


def test_nul_in_the_path_is_404(client, resident):
    assert_problem(client.get("/api/v1/me%00", headers=resident.headers), 404, "not_found")


def test_nul_in_a_query_value_is_422_naming_it(client, resident):
    response = client.get("/api/v1/wallet/entries?cursor=a%00b", headers=resident.headers)

    assert "cursor" in assert_problem(response, 422, "validation_error")["errors"]


def test_request_id_is_echoed(client):
    response = client.get("/api/v1/no-such-thing", headers={"X-Request-Id": "req-abc-123"})

    assert response.headers["X-Request-Id"] == "req-abc-123"


# ---------------------------------------------------------------- failures raised inside a route


@pytest.fixture
def failing_app():
    """A separate app, same test config, with routes that fail in the ways a bug or the database can."""
    application = create_app(conftest.test_config())

    @application.route("/boom")
    def boom():
        raise RuntimeError("secret-detail: password=hunter2 at /srv/app.py")

    @application.route("/integrity")
    def integrity():
        raise IntegrityError("INSERT INTO users ...", {"phone": "13800000000"}, Exception("duplicate key"))

    @application.route("/deadlock")
    def deadlock():
        raise OperationalError("UPDATE ...", {}, Exception("deadlock detected"))

    @application.route("/db-down")
    def db_down():
        raise OperationalError("SELECT 1", {}, Exception("connection refused to 10.0.0.5"))

    @application.route("/data-error")
    def data_error():
        raise DataError("INSERT ...", {}, Exception("value too long for type character varying(40)"))

    @application.route("/business")
    def business():
        raise InsufficientPoints("The account holds 3 points, 10 are needed")

    yield application
    with application.app_context():
        db.engine.dispose()


def test_unexpected_exception_is_500_without_its_text_and_logged_with_the_request_id(failing_app, caplog):
    client = failing_app.test_client()

    with caplog.at_level(logging.ERROR, logger="app.errors"):
        response = client.get("/boom", headers={"X-Request-Id": "req-500-test"})

    body = assert_problem(response, 500, "internal_error")
    text = response.get_data(as_text=True)
    assert "secret-detail" not in text and "hunter2" not in text and "RuntimeError" not in text
    assert "req-500-test" in body["detail"]
    records = [r for r in caplog.records if "req-500-test" in r.getMessage()]
    assert records and records[0].exc_info is not None
    assert records[0].exc_info[0] is RuntimeError


def test_integrity_error_is_409_conflict(failing_app):
    response = failing_app.test_client().get("/integrity")

    body = assert_problem(response, 409, "conflict")
    assert "duplicate" not in response.get_data(as_text=True)
    assert "13800000000" not in response.get_data(as_text=True)
    assert body["detail"]


def test_deadlock_is_409_conflict(failing_app):
    assert_problem(failing_app.test_client().get("/deadlock"), 409, "conflict")


def test_other_database_failure_is_503_without_its_text(failing_app, caplog):
    with caplog.at_level(logging.ERROR, logger="app.errors"):
        response = failing_app.test_client().get("/db-down")

    assert_problem(response, 503, "database_unavailable")
    assert "10.0.0.5" not in response.get_data(as_text=True)


def test_value_the_database_refuses_is_422_without_its_text(failing_app):
    response = failing_app.test_client().get("/data-error")

    body = assert_problem(response, 422, "validation_error")
    assert body["errors"]
    assert "varying" not in response.get_data(as_text=True)


def test_app_error_keeps_its_status_code_and_detail(failing_app):
    body = assert_problem(failing_app.test_client().get("/business"), 409, "insufficient_points")

    assert body["detail"] == "The account holds 3 points, 10 are needed"
