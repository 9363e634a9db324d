"""Exports through the API: totals, columns, folding of small cells, checksums, formats, retention."""
import csv
import hashlib
import io
import json
from datetime import timedelta
from itertools import combinations

import pytest
from openpyxl import load_workbook
from sqlalchemy import update

from app import jobs
from app.district import exports
from app.district.models import Export
from app.extensions import db
from tests.district.conftest import API, MEASURES, recount, today, totals

GROUPINGS = [list(c) for n in range(1, 5) for c in combinations(exports.GROUP_KEYS, n)]


def _export(client, admin, group_by, fmt="csv", period=(40, 0)):
    body = {"period_from": str(today() - timedelta(days=period[0])), "period_to": str(today() - timedelta(days=period[1])),
            "group_by": group_by, "format": fmt}
    reply = client.post(f"{API}/exports", json=body, headers=admin.headers)
    assert reply.status_code == 202, reply.get_json()
    assert reply.get_json()["status"] == "queued"
    view = client.get(f"{API}/exports/{reply.get_json()['id']}", headers=admin.headers).get_json()
    assert view["status"] == "done", view
    file = client.get(view["download_url"], headers=admin.headers)
    assert file.status_code == 200
    return view, file.get_data()


def _rows(fmt, data, group_by):
    header = group_by + list(MEASURES)
    if fmt == "csv":
        assert data.startswith(b"\xef\xbb\xbf")
        table = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
        assert table[0] == header
        return [dict(zip(header, r[:len(group_by)] + [int(v) for v in r[len(group_by):]])) for r in table[1:]]
    if fmt == "json":
        return json.loads(data)["rows"]
    sheet = load_workbook(io.BytesIO(data), read_only=True)["export"]
    table = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert table[0] == header
    return [dict(zip(header, r)) for r in table[1:]]


@pytest.fixture
def busy(households, make_community, approve):
    """Two communities with 6 and 5 households over ~40 days: every cell of a coarse grouping is big enough."""
    other = make_community()
    people = households(6) + households(5, community_id=other.id)
    for index, person in enumerate(people):
        for days_ago in (0, 2, 20, 35):
            approve(person, days_ago, quantity=f"{index + 1}.5")
        approve(person, 3 + index, verified=False)
    return people


@pytest.mark.parametrize("fmt", ["csv", "json", "xlsx"])
def test_export_totals_equal_the_sum_over_approved_actions_for_every_grouping(client, admin, busy, fmt):
    expected = totals(recount(today() - timedelta(days=40), today(), ["month"]).values())

    for group_by in GROUPINGS:
        view, data = _export(client, admin, group_by, fmt)

        rows = _rows(fmt, data, group_by)
        assert totals(rows) == expected, group_by
        assert view["row_count"] == len(rows)
        assert view["checksum_sha256"] == hashlib.sha256(data).hexdigest()
        assert all(r["households"] >= 5 for r in rows), group_by
        assert view["metadata"]["totals"]["households"] == 11


def test_rows_that_are_not_folded_equal_the_recount_and_name_their_cells(client, admin, busy):
    group_by = ["community", "month"]
    expected = recount(today() - timedelta(days=40), today(), group_by)

    _, data = _export(client, admin, group_by)

    rows = _rows("csv", data, group_by)
    shown = {(r["community"], r["month"]): {m: r[m] for m in MEASURES} for r in rows if r["community"] != "other"}
    assert shown and all(expected[key] == value for key, value in shown.items())
    assert totals(rows) == totals(expected.values())


def test_the_metadata_names_period_grouping_factor_sets_and_the_rule_in_every_format(client, admin, busy):
    view, data = _export(client, admin, ["action_type"], "json")
    _, book = _export(client, admin, ["action_type"], "xlsx")

    meta = json.loads(data)["metadata"]
    assert meta["factor_sets"] == ["SJ-2026.1"] and meta["group_by"] == ["action_type"]
    assert meta["period_to"] == str(today()) and "fewer than 5 households" in meta["suppression_rule"]
    assert meta["generated_at"] and view["metadata"] == meta
    sheet = load_workbook(io.BytesIO(book), read_only=True)["metadata"]
    pairs = {k: v for k, v in sheet.iter_rows(values_only=True)}
    assert json.loads(pairs["factor_sets"]) == ["SJ-2026.1"] and pairs["period_to"] == str(today())
    assert "suppression_rule" in pairs


# ---------------------------------------------------------------- folding small cells


def test_one_small_cell_is_folded_into_other_with_the_next_smallest_row(client, admin, households, make_community,
                                                                       approve):
    big, mid, small = make_community(), make_community(), make_community()
    for person in households(7, community_id=big.id):
        approve(person, 1)
    for person in households(5, community_id=mid.id):
        approve(person, 1)
    for person in households(2, community_id=small.id):
        approve(person, 1, quantity="9")

    _, data = _export(client, admin, ["community"])

    rows = _rows("csv", data, ["community"])
    by_name = {r["community"]: r for r in rows}
    assert set(by_name) == {big.name, "other"}  # 2 households alone would show: the 5-household row joins them
    assert by_name["other"]["households"] == 7 and by_name["other"]["actions"] == 7
    assert by_name[big.name]["households"] == 7
    assert totals(rows) == totals(recount(today() - timedelta(days=40), today(), ["community"]).values())


def test_small_cells_that_reach_five_households_together_fold_without_a_big_row(client, admin, households,
                                                                               make_community, approve):
    big = make_community()
    smalls = [make_community() for _ in range(3)]
    for person in households(6, community_id=big.id):
        approve(person, 1)
    for community in smalls:
        for person in households(2, community_id=community.id):
            approve(person, 1)

    _, data = _export(client, admin, ["community"])

    rows = {r["community"]: r for r in _rows("csv", data, ["community"])}
    assert set(rows) == {big.name, "other"}
    assert rows["other"]["households"] == 6 and rows["other"]["actions"] == 6


def test_other_counts_a_household_in_several_small_cells_once(client, admin, households, approve, make_community):
    big = make_community()
    for person in households(6, community_id=big.id):
        approve(person, 1)
    for person in households(4):  # each in two small cells: paper and aluminium
        approve(person, 1)
        approve(person, 1, variant="aluminium", quantity="0.5")

    _, data = _export(client, admin, ["community", "action_type"])

    rows = {r["community"]: r for r in _rows("csv", data, ["community", "action_type"])}
    # the 4 households alone would be < 5 distinct: the 6-household row is folded in too
    assert set(rows) == {"other"} and rows["other"]["households"] == 10 and rows["other"]["actions"] == 14


def test_an_export_of_fewer_than_five_households_in_all_writes_no_row(client, admin, households, approve):
    for person in households(4):
        approve(person, 1)

    view, data = _export(client, admin, ["month"], "json")

    assert json.loads(data)["rows"] == [] and view["row_count"] == 0
    assert view["metadata"]["withheld"] is True and "totals" not in view["metadata"]


def test_everything_small_but_five_households_in_all_is_one_other_row(client, admin, households, make_community,
                                                                     approve):
    for _ in range(3):
        for person in households(2, community_id=make_community().id):
            approve(person, 1)

    _, data = _export(client, admin, ["community", "month"])

    rows = _rows("csv", data, ["community", "month"])
    assert rows == [{"community": "other", "month": "other", "actions": 6, "households": 6,
                     "reduction_g": 9000, "verified_reduction_g": 9000, "points": 900}]


# ---------------------------------------------------------------- requests, states, retention


@pytest.mark.parametrize("body, field", [
    ({"group_by": []}, "group_by"),
    ({"group_by": ["month", "month"]}, "group_by"),
    ({"group_by": ["district"]}, "group_by.0"),
    ({"group_by": "month"}, "group_by"),
    ({"format": "pdf"}, "format"),
    ({"period_to": "2026-01-01", "period_from": "2026-02-01"}, "period_to"),
    ({"period_from": "0001-01-01"}, "period_from"),
    ({"status": "done"}, "status"),
])
def test_export_requests_are_validated_naming_the_field(client, admin, body, field):
    request = {"period_from": "2026-01-01", "period_to": "2026-03-31", "group_by": ["month"], "format": "csv", **body}

    reply = client.post(f"{API}/exports", json=request, headers=admin.headers)

    assert reply.status_code == 422 and field in reply.get_json()["errors"], reply.get_json()


def test_a_queued_export_cannot_be_downloaded_yet(client, admin):
    export = exports.create_export(admin.user, {"period_from": today(), "period_to": today(), "group_by": ["month"],
                                                "format": "csv"})
    db.session.commit()
    db.session.info.pop("committed_jobs", None)  # not pushed: it stays queued

    view = client.get(f"{API}/exports/{export.id}", headers=admin.headers).get_json()
    download = client.get(f"{API}/exports/{export.id}/download", headers=admin.headers)

    assert view["status"] == "queued" and view["progress"] == 0 and view["download_url"] is None
    assert download.status_code == 409 and download.get_json()["code"] == "invalid_state"


def test_a_failing_export_job_shows_failed(app, client, admin, monkeypatch):
    def broken(export_id):
        raise RuntimeError("disk full")

    monkeypatch.setitem(app.extensions[jobs.EXTENSION], "district.build_export", (broken, False))

    reply = client.post(f"{API}/exports", json={"period_from": str(today()), "period_to": str(today()),
                                                 "group_by": ["month"], "format": "csv"}, headers=admin.headers)

    view = client.get(f"{API}/exports/{reply.get_json()['id']}", headers=admin.headers).get_json()
    assert view["status"] == "failed" and view["checksum_sha256"] is None


def test_unknown_exports_are_404(client, admin):
    for path in ("/exports/nope", "/exports/nope/download", "/exports/" + "x" * 40):
        assert client.get(f"{API}{path}", headers=admin.headers).status_code == 404


def test_files_older_than_30_days_are_swept_and_then_gone(client, admin, busy, app):
    view, _ = _export(client, admin, ["month"])
    path = exports.export_dir() / db.session.get(Export, view["id"]).file_name
    assert path.is_file()
    db.session.execute(update(Export).where(Export.id == view["id"]).values(
        expires_at=db.session.get(Export, view["id"]).created_at - timedelta(seconds=1)))
    db.session.commit()

    result = app.test_cli_runner().invoke(args=["exports", "sweep"])

    assert "removed 1 expired export file" in result.output
    assert not path.exists()
    gone = client.get(f"{API}/exports/{view['id']}/download", headers=admin.headers)
    assert gone.status_code == 410 and gone.get_json()["code"] == "export_expired"
    assert client.get(f"{API}/exports/{view['id']}", headers=admin.headers).get_json()["status"] == "expired"


def test_progress_of_a_running_export_is_read_from_redis_when_configured(client, admin, app):
    export = exports.create_export(admin.user, {"period_from": today(), "period_to": today(), "group_by": ["month"],
                                                "format": "csv"})
    db.session.commit()
    db.session.info.pop("committed_jobs", None)
    db.session.execute(update(jobs.Job).where(jobs.Job.id == export.job_id).values(state="running"))
    db.session.commit()
    exports._write_progress(export.id, 40)

    view = client.get(f"{API}/exports/{export.id}", headers=admin.headers).get_json()

    assert view["status"] == "running"
    assert view["progress"] == (40 if app.config["REDIS_URL"] else 0)
