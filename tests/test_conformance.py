"""Real replies match the OpenAPI document (schemathesis' response_schema_conformance check).

Two passes: schemathesis reads every GET operation as each role, over a world with data in
it (codes, redemptions, actions in review, a flag), and a scripted tour checks the 2xx replies
of the routes residents, cashiers and staff use every day, item by item.
"""
from datetime import timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import response_schema_conformance
from sqlalchemy import update

from app.columns import utcnow
from app.extensions import db
from app.rewards.models import RedemptionCode
from tests.rewards.builders import *  # noqa: F401,F403  merchants, rewards, points, codes
from tests.test_fuzz import _LOADER

API = "/api/v1"
ROLES = ("resident", "community_staff", "merchant_staff", "district_admin")
SETTINGS = settings(max_examples=4, deadline=None, database=None, suppress_health_check=list(HealthCheck))

reads = schemathesis.openapi.from_wsgi(f"{API}/openapi.json", _LOADER).include(method="GET")
reads.config.phases.coverage.enabled = False
reads.config.generation.update(modes=["positive"])


@pytest.fixture
def world(client, factor_set, resident, staff, clerk, admin, reward, fund, get_code):
    """A resident with codes (live, used, expired), redemptions (one voided), actions in review and a flag."""
    fund(resident.household_id, 5000)
    for _ in range(4):
        code = get_code(resident, reward)["code"]
        client.post(f"{API}/merchant/redemptions", json={"code": code}, headers=clerk.headers)
    voided = client.get(f"{API}/merchant/redemptions", headers=clerk.headers).get_json()["items"][0]["id"]
    client.post(f"{API}/merchant/redemptions/{voided}/void", json={"reason": "退货"}, headers=clerk.headers)
    expired = get_code(resident, reward)["id"]
    db.session.execute(update(RedemptionCode).where(RedemptionCode.id == expired)
                       .values(expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    get_code(resident, reward)
    when = (utcnow() - timedelta(hours=1)).isoformat()
    for body in ({"action_type": "recycling", "variant": "paper", "quantity": "2.5", "unit": "kg"},
                 {"action_type": "walking", "quantity": "3", "unit": "km"}):
        client.post(f"{API}/actions", json={**body, "occurred_at": when}, headers=resident.headers)
    return {"resident": resident, "community_staff": staff, "merchant_staff": clerk, "district_admin": admin}


def pytest_generate_tests(metafunc):
    if "role" in metafunc.fixturenames:
        metafunc.parametrize("role", ROLES)


@reads.parametrize()
@SETTINGS
def test_every_read_matches_the_document(app, case, world, role):
    response = case.call(app=app, headers=world[role].headers)

    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])


# ---------------------------------------------------------------- the daily routes, reply by reply


def check(client, method, path, person, template=None, **kwargs):
    """Call the route and validate the reply against its operation in the document."""
    reply = getattr(client, method)(path, headers=person.headers, **kwargs)
    assert reply.status_code < 300, (path, reply.get_json())
    operation = reads_all[template or path.split("?")[0]][method.upper()]
    operation.validate_response(Response.from_wsgi(reply))
    return reply.get_json()


reads_all = schemathesis.openapi.from_wsgi(f"{API}/openapi.json", _LOADER)


def test_the_roles_daily_replies_match_the_document(client, world, resident, staff, clerk, reward, get_code):
    codes = check(client, "get", f"{API}/redemption-codes", resident)
    assert {i["status"] for i in codes["items"]} == {"live", "used", "expired"}
    assert check(client, "get", f"{API}/redemptions", resident)["items"]
    assert check(client, "get", f"{API}/wallet/allowances", resident)["items"]
    assert check(client, "get", f"{API}/wallet", resident)["balance"] > 0
    live = get_code(resident, reward)["code"]
    preview = check(client, "get", f"{API}/merchant/codes/{live}", clerk, template=f"{API}/merchant/codes/{{code}}")
    assert preview["redeemable"] is True
    check(client, "post", f"{API}/merchant/redemptions", clerk, json={"code": live})
    assert check(client, "get", f"{API}/merchant/redemptions", clerk)["items"][0]["reward_name"]
    queue = check(client, "get", f"{API}/review/actions", staff)
    assert queue["items"] and queue["items"][0]["review"]["points_if_approved"] is not None
    flags = check(client, "get", f"{API}/merchant-anomalies?state=open", staff)["items"]
    resolved = check(client, "post", f"{API}/merchant-anomalies/{flags[0]['id']}/resolve", staff,
                     template=f"{API}/merchant-anomalies/{{flag_id}}/resolve", json={"note": "已核实"})
    assert resolved["state"] == "resolved"
    check(client, "get", f"{API}/actions", resident)
    check(client, "get", f"{API}/factors", resident)
