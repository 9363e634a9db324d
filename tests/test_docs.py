"""The OpenAPI document describes what the API accepts, and the docs page works with no other host."""
import re

import pytest

API = "/api/v1"


@pytest.fixture
def spec(client):
    return client.get(f"{API}/openapi.json").get_json()


def prop(spec, schema, field):
    return spec["components"]["schemas"][schema]["properties"][field]


def test_the_docs_page_loads_every_asset_from_the_app_itself(client):
    page = client.get(f"{API}/docs")

    assert page.status_code == 200
    html = page.get_data(as_text=True)
    references = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(references) >= 3
    for ref in references:
        assert ref.startswith("/") and not ref.startswith("//"), ref
        assert client.get(ref).status_code == 200, ref
    assert not re.search(r"https?://|//cdn|jsdelivr|unpkg", html)
    assert '"validatorUrl": null' in html  # Swagger UI would otherwise call validator.swagger.io


def test_only_swagger_ui_files_are_served_from_the_assets_path(client):
    assert client.get(f"{API}/docs/assets/swagger-ui-bundle.js").headers["Content-Type"].startswith(
        ("application/javascript", "text/javascript"))
    assert client.get(f"{API}/docs/assets/index.html").status_code == 404
    assert client.get(f"{API}/docs/assets/..%2F__init__.py").status_code == 404


def test_decimal_fields_are_strings_with_their_pattern(spec):
    quantity = prop(spec, "ActionIn", "quantity")
    factor = prop(spec, "FactorRowIn", "kgco2e_per_unit")

    assert quantity == {"type": "string", "pattern": r"^[0-9]{1,6}(\.[0-9]{1,3})?$"}
    assert factor["type"] == "string" and factor["pattern"] == r"^[0-9]{1,9}(\.[0-9]{1,6})?$"
    assert prop(spec, "FactorRowIn", "daily_cap")["nullable"] is True
    assert prop(spec, "FactorOut", "points_per_unit")["type"] == "string"
    assert prop(spec, "AllowanceOut", "daily_left")["type"] == "string"


@pytest.mark.parametrize("schema,field", [("VoidIn", "reason"), ("ReasonIn", "reason"), ("AppealIn", "note"),
                                          ("ResolveIn", "note"), ("RewardIn", "name"), ("MerchantIn", "name")])
def test_fields_that_refuse_blank_strings_say_so(spec, schema, field):
    described = prop(spec, schema, field)

    assert described["minLength"] == 1 and described["pattern"] == r"\S"


@pytest.mark.parametrize("schema,field,values", [
    ("ActionOut", "status", {"pending", "approved", "rejected", "reversed"}),
    ("ActionOut", "source", {"self_reported", "staff", "device", "import"}),
    ("RedemptionCodeList", None, None),
    ("RedemptionOut", "status", {"completed", "voided"}),
    ("AnomalyOut", "state", {"open", "resolved"}),
    ("CodePreviewOut", "status", {"live", "used", "expired", "burned"}),
    ("FactorSetSummaryOut", "status", {"draft", "published"}),
])
def test_statuses_and_kinds_are_enums(spec, schema, field, values):
    if field is None:
        item = spec["components"]["schemas"]["CodeItemOut"]["properties"]["status"]
        assert set(item["enum"]) == {"live", "used", "expired", "burned"}
        return
    assert set(prop(spec, schema, field)["enum"]) == values


def test_the_new_routes_are_documented(spec):
    paths = spec["paths"]

    assert "get" in paths["/api/v1/wallet/allowances"] and "get" in paths["/api/v1/redemptions"]
    assert "get" in paths["/api/v1/redemption-codes"] and "post" in paths["/api/v1/redemption-codes"]
    assert "get" in paths["/api/v1/merchant/codes/{code}"]
    assert "post" in paths["/api/v1/merchant-anomalies/{flag_id}/resolve"]
    review = spec["components"]["schemas"]["ReviewOut"]["properties"]
    assert {"resident_name_masked", "phone_masked", "household_card", "community_id", "points_if_approved",
            "appeal_note", "rejection_reason"} <= set(review)
