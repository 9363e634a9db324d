"""Hostile JSON bodies: every one is a 400 `malformed_json` problem, on every route, never a 5xx."""
import pytest

from app.blueprint import Blueprint
from app.extensions import api
from app.json_body import MAX_DEPTH, MAX_NUMBER_LENGTH
from tests.test_errors import assert_problem

DEEP_ARRAYS = b"[" * 5000 + b"]" * 5000
HUGE_INTEGER_PHONE = b'{"phone": ' + b"1" * 5000 + b', "password": "x"}'
DEEP_OBJECT = b'{"a": ' * 990 + b"1" + b"}" * 990
HOSTILE = {
    "deep arrays": DEEP_ARRAYS,
    "5,000-digit integer": HUGE_INTEGER_PHONE,
    "990-deep object": DEEP_OBJECT,
    "5,000-digit float": b'{"quantity": 0.' + b"1" * 5000 + b"}",
    "NaN": b'{"quantity": NaN}',
    "Infinity": b'{"quantity": -Infinity}',
    "not UTF-8": b'{"phone": "\xff\xfe"}',
    "unpaired surrogate": b'{"phone": "1380000\\ud800", "external_id": "\\uDC00x", "records": [{"a": "\\udbff"}]}',
}


def post(client, path, body, headers=None):
    return client.post(path, data=body, content_type="application/json", headers=headers or {})


@pytest.mark.parametrize("body", HOSTILE.values(), ids=HOSTILE.keys())
@pytest.mark.parametrize("path", ["/api/v1/auth/login", "/api/v1/auth/register"])
def test_hostile_bodies_before_login_are_400_malformed_json(client, path, body):
    assert_problem(post(client, path, body), 400, "malformed_json")


@pytest.mark.parametrize("body", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_bodies_on_actions_are_400_malformed_json(client, resident, body):
    assert_problem(post(client, "/api/v1/actions", body, resident.headers), 400, "malformed_json")


def test_the_bounds_are_the_documented_ones(client, resident):
    at_depth = b'{"a": ' * (MAX_DEPTH - 1) + b"[1]" + b"}" * (MAX_DEPTH - 1)
    too_deep = b'{"a": ' * MAX_DEPTH + b"[1]" + b"}" * MAX_DEPTH
    longest = b'{"phone": ' + b"1" * MAX_NUMBER_LENGTH + b"}"
    too_long = b'{"phone": ' + b"1" * (MAX_NUMBER_LENGTH + 1) + b"}"

    assert post(client, "/api/v1/auth/login", at_depth).status_code == 422  # parsed; the fields are wrong
    assert post(client, "/api/v1/auth/login", longest).status_code == 422
    body = assert_problem(post(client, "/api/v1/auth/login", too_deep), 400, "malformed_json")
    assert "32" in body["detail"]
    body = assert_problem(post(client, "/api/v1/auth/login", too_long), 400, "malformed_json")
    assert "40" in body["detail"]


def test_a_surrogate_pair_is_one_character_and_welcome(client, community):
    """An emoji escaped as its UTF-16 pair is a character: only a half of a pair is refused."""
    body = (b'{"phone": "13900000077", "password": "long-enough-1", "community_id": "%s", '
            b'"display_name": "\\ud83c\\udf31 \xe7\xbb\xbf"}' % community.id.encode())

    reply = post(client, "/api/v1/auth/register", body)

    assert reply.status_code == 201, reply.get_json()
    assert reply.get_json()["user"]["display_name"] == "\U0001f331 绿"


def test_a_hostile_body_is_refused_before_anything_is_written(client):
    from sqlalchemy import func, select

    from app.accounts.models import User
    from app.extensions import db

    users = db.session.scalar(select(func.count()).select_from(User))
    post(client, "/api/v1/auth/register", DEEP_ARRAYS)

    assert db.session.scalar(select(func.count()).select_from(User)) == users


def _json_body_operations(app):
    spec = api.spec.to_dict()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {}) if isinstance(operation, dict) else {}
            if "application/json" in content:
                yield method.upper(), path


def test_every_json_route_turns_hostile_bodies_into_4xx(app, client, resident, admin):
    """No JSON body, on any documented route and for any caller, reaches a 5xx."""
    operations = list(_json_body_operations(app))
    assert len(operations) > 20  # the walk found the routes, not an empty spec
    for method, path in operations:
        url = path.replace("{", "").replace("}", "")  # ids that name nothing: still parsed or refused first
        for headers in ({}, resident.headers, admin.headers):
            for name, body in HOSTILE.items():
                response = client.open(url, method=method, data=body, content_type="application/json",
                                       headers=headers)
                assert response.status_code < 500, f"{method} {path} {name}: {response.status_code}"


def test_every_feature_blueprint_parses_bodies_in_one_place(app):
    import flask_smorest

    smorest = [bp for bp in app.blueprints.values() if isinstance(bp, flask_smorest.Blueprint)]
    assert len(smorest) >= 9
    for blueprint in smorest:
        assert isinstance(blueprint, Blueprint), blueprint.name


def test_an_empty_json_body_on_a_route_that_takes_none_is_no_body(client, resident):
    """Mobile clients send `Content-Type: application/json` on every request, body or not."""
    response = client.post("/api/v1/auth/logout", data=b"", content_type="application/json",
                           headers=resident.headers)

    assert response.status_code == 204


def test_an_empty_json_body_where_one_is_needed_names_the_missing_fields(client):
    response = client.post("/api/v1/auth/login", data=b"  ", content_type="application/json")

    body = assert_problem(response, 422, "validation_error")
    assert {"phone", "password"} <= set(body["errors"])


def test_a_hostile_body_is_refused_without_an_error_in_the_log(client, caplog):
    """The per-phone limit keys on the address instead of failing, and nothing logs a traceback."""
    with caplog.at_level("WARNING"):
        response = post(client, "/api/v1/auth/login", HOSTILE["NaN"])

    assert_problem(response, 400, "malformed_json")
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL") or r.exc_info]
