"""Who may call the district routes: every route is found from the app's URL map, so none is missed."""
import pytest

from tests.district.conftest import API

PARK_MANAGER_MAY = {"district.list_parks", "district.get_park", "district.retire", "district.statement",
                    "district.set_inventory"}
BODIES = {"POST": {}, "PUT": {"emissions_g": 1}}


def district_routes(app):
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("district."):
            continue
        path = rule.rule.replace("<export_id>", "x").replace("<batch_id>", "x").replace("<park_id>", "x")
        path = path.replace("<int:year>", "2026")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            routes.append((rule.endpoint, method, path))
    return routes


def _call(client, method, path, headers):
    return client.open(path, method=method, json=BODIES.get(method), headers=headers)


def test_the_district_routes_are_the_contracts_and_more(app):
    paths = {(m, p) for _, m, p in district_routes(app)}

    for needed in [("POST", f"{API}/exports"), ("GET", f"{API}/exports/x"), ("GET", f"{API}/exports/x/download"),
                   ("POST", f"{API}/reduction-batches"), ("POST", f"{API}/parks"), ("POST", f"{API}/parks/x/transfers"),
                   ("POST", f"{API}/parks/x/retirements"), ("GET", f"{API}/parks/x/statement"),
                   ("GET", f"{API}/district/liability"), ("GET", f"{API}/district/summary")]:
        assert needed in paths


@pytest.mark.parametrize("who", ["resident", "clerk", "staff"])
def test_residents_merchant_staff_and_community_staff_are_refused_every_district_route(app, client, request, who):
    person = request.getfixturevalue(who)

    for endpoint, method, path in district_routes(app):
        reply = _call(client, method, path, person.headers)
        assert reply.status_code == 403, (who, method, path, reply.get_json())
        assert reply.get_json()["code"] == "forbidden"


def test_a_park_manager_is_refused_every_route_but_their_parks(app, client, park_manager):
    for endpoint, method, path in district_routes(app):
        reply = _call(client, method, path, park_manager.headers)
        if endpoint in PARK_MANAGER_MAY:
            assert reply.status_code in (200, 404, 422), (method, path, reply.get_json())  # "x" is no park of theirs
        else:
            assert reply.status_code == 403, (method, path, reply.get_json())


def test_no_token_is_401_on_every_district_route(app, client):
    for _, method, path in district_routes(app):
        assert _call(client, method, path, {}).status_code == 401, (method, path)
