"""District admin pages through the test client: real data, the numbers an admin checks, the API's rules."""
import csv
import io
import re
import xml.etree.ElementTree as ET
from importlib import resources

import pytest
from sqlalchemy import select

from app.activities.models import FactorSet
from app.district.models import Export, ReductionBatch
from app.extensions import db
from app.localtime import today
from tests.console.conftest import console_login, cookie_session_for, csrf_of, post_form, text_of
from tests.console.district_data import district, last_months, mid_month, record, redeemed_in_a  # noqa: F401,E501

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def admin_console(app, admin):
    client = app.test_client()
    assert console_login(client, admin.user.phone).status_code == 303
    return client


def charts_of(html: str) -> dict[str, ET.Element]:
    """The inline SVG charts of a page by the id of the card holding them."""
    found = {}
    for card, svg in re.findall(r'<div class="card" id="(chart-[a-z]+)">\s*(<svg.*?</svg>)', html, re.S):
        found[card] = ET.fromstring(svg)
    return found


def drawn(svg: ET.Element, tag="rect") -> list[tuple]:
    return [(e.get("data-series"), e.get("data-label"), int(e.get("data-value")))
            for e in svg.iter(f"{SVG}{tag}") if e.get("data-value") is not None]


# ---------------------------------------------------------------- dashboard and liability


def test_the_dashboard_shows_the_months_reductions_households_and_communities(admin_console, district):
    reply = admin_console.get("/console/district/dashboard")

    html = text_of(reply)
    assert reply.status_code == 200
    assert 'id="figure-reduction"><span class="value">9,250 g CO₂e' in html
    assert 'id="figure-households"><span class="value">3<' in html
    charts = charts_of(html)
    earlier, last = district["months"][3], district["months"][4]
    assert drawn(charts["chart-reductions"]) == [("回收", earlier, 3_150), ("二手", earlier, 3_600),
                                                 ("回收", last, 2_500)]
    households = [p[2] for p in drawn(charts["chart-households"], "circle")]
    assert households == [0, 0, 0, 2, 2, 0]
    assert drawn(charts["chart-communities"]) == [(None, "甲社区", 5_650), (None, "乙社区", 3_600)]
    assert ("待兑付", "甲社区", 565) in drawn(charts["chart-points"])


def test_the_dashboard_is_in_chinese_by_default_and_english_on_request(admin_console, district):
    chinese = text_of(admin_console.get("/console/district/dashboard"))
    english = text_of(admin_console.get("/console/district/dashboard?lang=en"))

    assert "区级看板" in chinese and "District dashboard" not in chinese
    assert "District dashboard" in english and "Reductions by month and action type" in english


def test_the_dashboard_of_an_empty_district_says_there_is_no_data(admin_console):
    html = text_of(admin_console.get("/console/district/dashboard"))

    assert html.count("暂无数据") == 4


def test_the_liability_page_lists_outstanding_and_redeemed_points_by_community(admin_console, district,
                                                                                redeemed_in_a):
    html = text_of(admin_console.get("/console/district/liability"))

    rows = {name: (outstanding, redeemed) for name, outstanding, redeemed in re.findall(
        r'<tr data-community="[0-9a-f]+"><td>([^<]+)</td>.*?<td class="num outstanding">([0-9,]+)</td>'
        r'<td class="num redeemed">([0-9,]+)</td>', html, re.S)}
    assert rows == {"甲社区": ("465", "100"), "乙社区": ("360", "0")}
    assert 'id="total-outstanding">825<' in html and 'id="total-redeemed">100<' in html


# ---------------------------------------------------------------- factor sets


def factor_csv(code: str, effective_from, paper_kg="1.2") -> bytes:
    text = resources.files("app").joinpath("data/factors.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    for row in rows:
        row.update(factor_set=code, effective_from=str(effective_from))
        if (row["action_type"], row["variant"]) == ("recycling", "paper"):
            row["kgco2e_per_unit"] = paper_kg
        writer.writerow(row)
    return out.getvalue().encode()


def test_a_factor_csv_upload_shows_the_changed_factor_and_publishing_puts_it_in_force(admin_console, admin,
                                                                                      factor_set, client):
    upload = admin_console.post("/console/district/factor-sets", content_type="multipart/form-data", data={
        "csrf_token": csrf_of(admin_console.get("/console/district/factor-sets")),
        "file": (io.BytesIO(factor_csv("SJ-2026.9", today())), "factors.csv")})

    assert upload.status_code == 303 and upload.headers["Location"].endswith("/console/district/factor-sets/SJ-2026.9")
    page = text_of(admin_console.get("/console/district/factor-sets/SJ-2026.9"))
    changed = re.findall(r'<tr class="changed" data-factor="([^"]+)" data-field="([^"]+)">.*?'
                         r'<td class="old">([^<]+)</td><td class="new">([^<]+)</td>', page, re.S)
    assert changed == [("recycling:paper", "kgco2e_per_unit", "1", "1.2")]
    assert "新增 0 项，删除 0 项，修改 1 项" in page

    published = post_form(admin_console, "/console/district/factor-sets/SJ-2026.9/publish",
                          page="/console/district/factor-sets/SJ-2026.9")

    assert published.status_code == 303
    in_force = client.get("/api/v1/factors", headers=admin.headers).get_json()
    assert in_force["factor_set"]["code"] == "SJ-2026.9"
    paper = next(f for f in in_force["factors"] if (f["action_type"], f["variant"]) == ("recycling", "paper"))
    assert paper["kgco2e_per_unit"] == "1.2"


def test_a_bad_factor_csv_is_refused_naming_the_line_and_stores_nothing(admin_console, factor_set):
    bad = factor_csv("SJ-2026.8", today()).replace(b",1.2,", b",lots,", 1)

    reply = admin_console.post("/console/district/factor-sets", content_type="multipart/form-data", data={
        "csrf_token": csrf_of(admin_console.get("/console/district/factor-sets")),
        "file": (io.BytesIO(bad), "factors.csv")})

    assert reply.status_code == 422
    assert "rows.1.kgco2e_per_unit" in text_of(reply)
    assert db.session.scalar(select(FactorSet).where(FactorSet.code == "SJ-2026.8")) is None


# ---------------------------------------------------------------- exports


@pytest.fixture
def five_households(make_community, make_resident, record):
    """Five households of one community, each recycling 2 kg of paper last month (2,000 g, 200 points)."""
    community = make_community("导出社区")
    people = [make_resident(community_id=community.id) for _ in range(5)]
    for person in people:
        record(person, mid_month(last_months()[4]), "paper", "2")
    return community


def test_an_export_requested_on_the_page_is_done_and_downloads_the_csv_rows(admin_console, five_households):
    month = last_months()[4]
    token = csrf_of(admin_console.get("/console/district/exports"))

    reply = admin_console.post("/console/district/exports", data={
        "csrf_token": token, "period_from": f"{month}-01", "period_to": str(today()),
        "group_by": ["community", "month"], "format": "csv"})

    assert reply.status_code == 303
    export_id = reply.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    page = text_of(admin_console.get(f"/console/district/exports/{export_id}"))
    assert 'data-status="done"' in page and 'http-equiv="refresh"' not in page
    status = admin_console.get(f"/console/district/exports/{export_id}/status").get_json()
    assert status["status"] == "done" and status["progress"] == 100 and status["row_count"] == 1
    download = admin_console.get(status["download_url"])
    assert download.status_code == 200 and download.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(download.get_data().decode("utf-8-sig"))))
    assert rows == [["community", "month", "actions", "households", "reduction_g", "verified_reduction_g", "points"],
                    ["导出社区", month, "5", "5", "10000", "10000", "1000"]]
    assert db.session.get(Export, export_id).group_by == "community,month"


def test_an_export_with_a_bad_period_is_refused_naming_the_field(admin_console):
    reply = post_form(admin_console, "/console/district/exports", {
        "period_from": "2026-05-01", "period_to": "2026-04-01", "group_by": "month", "format": "csv"})

    assert reply.status_code == 422
    assert "period_to" in text_of(reply)
    assert db.session.scalar(select(Export.id)) is None


# ---------------------------------------------------------------- batches, transfers, retirements


def test_issue_transfer_and_retire_show_on_the_park_statement(admin_console, district, park):
    issued = post_form(admin_console, "/console/district/batches", {
        "community_id": district["a"].id, "period_from": f"{today().year}-01-01", "period_to": str(today())},
        page="/console/district/batches")
    batch = db.session.scalar(select(ReductionBatch).where(ReductionBatch.community_id == district["a"].id))

    assert issued.status_code == 303 and batch.quantity_g == 5_650
    listing = text_of(admin_console.get("/console/district/batches"))
    assert f"SJ-{today().year}-{district['a'].id[:8].upper()}-{batch.serial_from}-{batch.serial_to}" in listing

    moved = post_form(admin_console, "/console/district/transfers",
                      {"park_id": park.id, "batch_id": batch.id, "quantity_g": "4000"}, page="/console/district/batches")

    assert moved.status_code == 303 and moved.headers["Location"].endswith(f"/console/parks/{park.id}/statement")
    statement = text_of(admin_console.get(f"/console/parks/{park.id}/statement"))
    assert 'id="received">4,000 g' in statement and 'id="available">4,000 g' in statement
    assert f"{batch.serial_from}–{batch.serial_from + 3_999} (4,000 g" in statement

    retired = post_form(admin_console, f"/console/parks/{park.id}/retirements",
                        {"quantity_g": "1500", "purpose": "抵消2026年排放", "beneficiary": "", "inventory_year": "2026"},
                        page=f"/console/parks/{park.id}/statement")

    assert retired.status_code == 303 and "/certificate" in retired.headers["Location"]
    statement = text_of(admin_console.get(f"/console/parks/{park.id}/statement"))
    assert 'id="retired">1,500 g' in statement and 'id="available">2,500 g' in statement
    assert f'<div class="serial retired-range">{batch.serial_from}–{batch.serial_from + 1_499} (1,500 g)' in statement
    certificate = text_of(admin_console.get(retired.headers["Location"]))
    assert "1,500 g CO₂e" in certificate and "抵消2026年排放" in certificate
    assert f"{batch.serial_from}-{batch.serial_from + 1_499}" in certificate
    assert "@media print" in text_of(admin_console.get("/console/static/district.css"))


def test_a_transfer_beyond_what_the_batch_holds_is_refused_and_moves_nothing(admin_console, district, park):
    post_form(admin_console, "/console/district/batches", {
        "community_id": district["b"].id, "period_from": f"{today().year}-01-01", "period_to": str(today())},
        page="/console/district/batches")
    batch = db.session.scalar(select(ReductionBatch).where(ReductionBatch.community_id == district["b"].id))

    reply = post_form(admin_console, "/console/district/transfers",
                      {"park_id": park.id, "batch_id": batch.id, "quantity_g": "3601"}, page="/console/district/batches")

    assert reply.status_code == 409
    assert "3600" in text_of(reply)
    db.session.refresh(park)
    assert park.received_g == 0


def test_issuing_with_nothing_to_batch_says_so(admin_console, community):
    reply = post_form(admin_console, "/console/district/batches", {
        "community_id": community.id, "period_from": f"{today().year}-01-01", "period_to": str(today())},
        page="/console/district/batches")

    assert reply.status_code == 409


# ---------------------------------------------------------------- who may open these pages


DISTRICT_PAGES = ("/console/district/dashboard", "/console/district/factor-sets", "/console/district/exports",
                  "/console/district/batches", "/console/district/parks", "/console/district/liability")


@pytest.mark.parametrize("role", ["resident", "merchant_staff", "community_staff", "park_manager"])
def test_only_a_district_admin_opens_the_district_pages(app, role, resident, make_staff, merchant, park):
    person = {"resident": lambda: resident, "merchant_staff": lambda: make_staff("merchant_staff", merchant_id=merchant.id),
              "community_staff": lambda: make_staff("community_staff"),
              "park_manager": lambda: make_staff("park_manager", park_id=park.id)}[role]()
    client = app.test_client()
    cookie_session_for(client, person)

    statuses = {path: client.get(path).status_code for path in DISTRICT_PAGES}

    assert set(statuses.values()) == {403}, statuses


def test_a_form_without_its_csrf_token_is_refused(admin_console, community):
    reply = admin_console.post("/console/district/batches", data={
        "community_id": community.id, "period_from": "2026-01-01", "period_to": "2026-01-31"})

    assert reply.status_code in (400, 403)
    assert db.session.scalar(select(ReductionBatch.id)) is None
