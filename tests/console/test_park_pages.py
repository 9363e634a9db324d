"""Park pages: a manager's own statement with serial ranges, retiring, the certificate; nobody else's park."""
import re

import pytest
from sqlalchemy import select

from app.district import batches, parks
from app.district.models import Retirement
from app.extensions import db
from app.localtime import today
from tests.console.conftest import console_login, post_form, text_of
from tests.console.district_data import district, record  # noqa: F401  fixtures


@pytest.fixture
def stocked_park(district, park, admin):
    """`park` holding 3,000 g of community A's batch (5,650 g), 1,000 g of it retired."""
    batch = batches.issue_batch(district["a"].id, today().replace(month=1, day=1), today(), admin.id)
    parks.transfer(park, batch.id, 3_000, admin.id)
    parks.retire(park, {"quantity_g": 1_000, "purpose": "年度抵消", "beneficiary": "测试企业"}, admin.id)
    db.session.commit()
    return park, batch


@pytest.fixture
def manager_console(app, make_staff, park):
    manager = make_staff("park_manager", park_id=park.id)
    client = app.test_client()
    assert console_login(client, manager.user.phone).status_code == 303
    return client


def test_a_park_manager_lands_on_their_statement_with_holdings_transfers_and_retirements(manager_console,
                                                                                         stocked_park):
    park, batch = stocked_park

    home = text_of(manager_console.get("/console/park"))
    landing = manager_console.get("/console/park/statement")
    html = text_of(manager_console.get(landing.headers["Location"]))

    assert 'href="/console/park/statement"' in home
    assert landing.headers["Location"].endswith(f"/console/parks/{park.id}/statement")
    assert 'id="received">3,000 g' in html and 'id="retired">1,000 g' in html and 'id="available">2,000 g' in html
    first = batch.serial_from
    assert re.search(rf'class="serial received-range">{first}–{first + 2_999} \(3,000 g', html)
    assert f'<div class="serial retired-range">{first}–{first + 999} (1,000 g)' in html
    assert f'<div class="serial available-range">{first + 1_000}–{first + 2_999} (2,000 g)' in html
    assert batches.serial_label(batch) in html
    assert "年度抵消" in html and "测试企业" in html


def test_a_park_manager_retires_and_gets_a_printable_certificate(manager_console, stocked_park):
    park, batch = stocked_park

    reply = post_form(manager_console, f"/console/parks/{park.id}/retirements",
                      {"quantity_g": "500", "purpose": "产品碳中和", "inventory_year": str(today().year)},
                      page=f"/console/parks/{park.id}/statement")

    assert reply.status_code == 303
    retirement = db.session.scalar(select(Retirement).where(Retirement.purpose == "产品碳中和"))
    assert retirement.quantity_g == 500 and retirement.park_id == park.id
    certificate = text_of(manager_console.get(reply.headers["Location"]))
    first = batch.serial_from + 1_000
    assert f"{batches.serial_label(batch, first, first + 499)}" in certificate
    assert 'id="certificate-amount">500 g CO₂e<' in certificate
    assert "注销证书" in certificate and retirement.id in certificate
    assert 'class="print-certificate"' in certificate


def test_retiring_more_than_the_park_holds_is_refused_and_nothing_is_retired(manager_console, stocked_park):
    park, _ = stocked_park

    reply = post_form(manager_console, f"/console/parks/{park.id}/retirements",
                      {"quantity_g": "2001", "purpose": "太多"}, page=f"/console/parks/{park.id}/statement")

    assert reply.status_code == 409
    assert db.session.scalar(select(Retirement).where(Retirement.purpose == "太多")) is None
    db.session.refresh(park)
    assert park.retired_g == 1_000


def test_a_park_manager_cannot_see_another_parks_statement_or_certificate(manager_console, stocked_park):
    other = parks.create_park("别的园区")
    db.session.commit()
    park, _ = stocked_park
    retirement = db.session.scalar(select(Retirement).where(Retirement.park_id == park.id))

    statement = manager_console.get(f"/console/parks/{other.id}/statement")
    retire = post_form(manager_console, f"/console/parks/{other.id}/retirements", {"quantity_g": "1", "purpose": "x"},
                       page=f"/console/parks/{park.id}/statement")
    certificate = manager_console.get(f"/console/parks/{other.id}/retirements/{retirement.id}/certificate")

    assert (statement.status_code, retire.status_code, certificate.status_code) == (404, 404, 404)
    assert "别的园区" not in text_of(statement)


def test_a_park_manager_cannot_open_the_district_pages(manager_console):
    assert manager_console.get("/console/district/dashboard").status_code == 403
    assert manager_console.get("/console/district/batches").status_code == 403


def test_a_park_manager_records_a_years_emissions_and_the_statement_shows_gross_offset_and_net(manager_console,
                                                                                              stocked_park):
    park, _ = stocked_park
    year = today().year

    reply = post_form(manager_console, f"/console/parks/{park.id}/inventory",
                      {"year": str(year), "emissions_g": "5000"}, page=f"/console/parks/{park.id}/statement")
    bad = post_form(manager_console, f"/console/parks/{park.id}/inventory",
                    {"year": "1999", "emissions_g": "5000"}, page=f"/console/parks/{park.id}/statement")
    not_ascii = [post_form(manager_console, f"/console/parks/{park.id}/inventory", {"year": year, "emissions_g": "1"},
                           page=f"/console/parks/{park.id}/statement").status_code
                 for year in ("²⁰²⁶", "٢٠٢٦", "2026²")]  # isdigit(), yet not the year's four ASCII digits

    assert reply.status_code == 303 and bad.status_code == 422 and not_ascii == [422, 422, 422]
    html = text_of(manager_console.get(f"/console/parks/{park.id}/statement"))
    row = re.search(rf'<tr data-year="{year}">(.*?)</tr>', html, re.S).group(1)
    assert re.findall(r'<td class="num[^"]*">([^<]+)</td>', row) == ["5,000 g CO₂e", "1,000 g CO₂e", "4,000 g CO₂e"]
    assert [i["net_g"] for i in parks.inventory_view(park)] == [4_000]
