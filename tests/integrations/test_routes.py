"""Integrations through the HTTP API: registration, signed records, duplicates, anomalies, CSV imports."""
import json
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.activities.models import Action
from app.columns import utcnow
from app.extensions import db
from app.integrations import service as integrations
from app.integrations.models import Integration, IntegrationImport
from tests.integrations.conftest import ACTIONS_PATH, CST, card_of, balance, push, record, signed_headers

PROBLEM = "application/problem+json"


def assert_problem(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["code"] == code
    return body


def actions_of(integration_id):
    return db.session.scalars(
        select(Action).where(Action.integration_id == integration_id).order_by(Action.external_id)
    ).all()


# ---------------------------------------------------------------- registration


def test_admin_registers_an_integration_and_sees_its_secret_only_once(client, admin, factor_set):
    response = client.post("/api/v1/integrations", json={"name": "九亭回收站", "kind": "device"},
                           headers=admin.headers)

    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert {"id", "name", "kind", "secret"} <= body.keys()
    assert body["name"] == "九亭回收站" and body["kind"] == "device" and body["source"] == "device"
    assert len(body["secret"]) == 64
    listed = client.get("/api/v1/integrations", headers=admin.headers).get_json()
    item = next(i for i in listed["items"] if i["id"] == body["id"])
    assert "secret" not in item and item["active"] is True
    stored = db.session.get(Integration, body["id"])
    assert body["secret"] not in json.dumps({c.name: str(getattr(stored, c.name))
                                             for c in Integration.__table__.columns})


def test_the_secret_from_registration_signs_records(client, admin, resident, factor_set):
    created = client.post("/api/v1/integrations", json={"name": "地铁运营商", "kind": "transit_operator"},
                          headers=admin.headers).get_json()
    signer = type("S", (), {"id": created["id"], "secret": created["secret"]})

    response = push(client, signer, record("trip-1", card_of(resident), action_type="transit", variant="metro",
                                           quantity="10", unit="km"))

    assert response.status_code == 200
    assert response.get_json()["results"][0]["status"] == "created"
    action = db.session.get(Action, response.get_json()["results"][0]["action_id"])
    assert action.source == "import"


@pytest.mark.parametrize("body, field", [
    ({"name": "x", "kind": "robot"}, "kind"),
    ({"name": "", "kind": "device"}, "name"),
    ({"name": "x", "kind": "device", "source": "resident"}, "source"),
    ({"name": "x", "kind": "device", "secret": "mine"}, "secret"),
])
def test_registration_refuses_bad_fields(client, admin, body, field):
    response = client.post("/api/v1/integrations", json=body, headers=admin.headers)

    assert field in assert_problem(response, 422, "validation_error")["errors"]


def test_only_district_admins_manage_integrations(client, staff, resident, device):
    for person in (staff, resident):
        assert_problem(client.post("/api/v1/integrations", json={"name": "x", "kind": "device"},
                                   headers=person.headers), 403, "forbidden")
        assert_problem(client.get("/api/v1/integrations", headers=person.headers), 403, "forbidden")
        assert_problem(client.post(f"/api/v1/integrations/{device.id}/deactivate", headers=person.headers),
                       403, "forbidden")


def test_a_deactivated_integration_is_refused_and_cannot_be_deactivated_twice(client, admin, resident, device):
    response = client.post(f"/api/v1/integrations/{device.id}/deactivate", headers=admin.headers)

    assert response.status_code == 200 and response.get_json()["active"] is False
    assert_problem(push(client, device, record("r-1", card_of(resident))), 401, "unauthenticated")
    assert_problem(client.post(f"/api/v1/integrations/{device.id}/deactivate", headers=admin.headers),
                   409, "invalid_state")
    assert_problem(client.post("/api/v1/integrations/nope/deactivate", headers=admin.headers), 404, "not_found")


# ---------------------------------------------------------------- signed records


def test_signed_single_record_is_created_approved_and_credits_the_wallet(client, device, resident):
    response = push(client, device, record("bin-0001", card_of(resident), quantity="2.5"))

    assert response.status_code == 200, response.get_data(as_text=True)
    [result] = response.get_json()["results"]
    assert result["external_id"] == "bin-0001" and result["status"] == "created"
    assert "errors" not in result
    action = db.session.get(Action, result["action_id"])
    assert (action.status, action.source, action.verified) == ("approved", "device", True)
    assert (action.household_id, action.points, action.reduction_g) == (resident.household_id, 250, 2500)
    assert balance(client, resident) == 250


def test_batch_of_several_records_reports_each_in_input_order(client, device, make_resident):
    first, second = make_resident(), make_resident()
    records = [record("b-3", card_of(first), quantity="1"), record("b-1", card_of(second), quantity="2"),
               record("b-2", card_of(first), variant="pet", quantity="1")]

    response = push(client, device, {"records": records})

    assert response.status_code == 200
    results = response.get_json()["results"]
    assert [r["external_id"] for r in results] == ["b-3", "b-1", "b-2"]
    assert [r["status"] for r in results] == ["created"] * 3
    assert balance(client, first) == 100 + 115
    assert balance(client, second) == 200


def test_repeated_external_id_in_one_batch_is_a_duplicate_credited_once(client, device, resident):
    records = [record("dup-1", card_of(resident)), record("dup-1", card_of(resident)),
               record("dup-1", card_of(resident), quantity="9")]

    results = push(client, device, {"records": records}).get_json()["results"]

    assert [r["status"] for r in results] == ["created", "duplicate", "duplicate"]
    assert "action_id" not in results[1]
    assert len(actions_of(device.id)) == 1
    assert balance(client, resident) == 200


def test_external_id_received_in_an_earlier_batch_is_a_duplicate(client, device, resident):
    push(client, device, {"records": [record("e-1", card_of(resident)), record("e-2", card_of(resident))]})

    results = push(client, device, {"records": [record("e-2", card_of(resident)),
                                                record("e-3", card_of(resident))]}).get_json()["results"]

    assert [r["status"] for r in results] == ["duplicate", "created"]
    assert [a.external_id for a in actions_of(device.id)] == ["e-1", "e-2", "e-3"]
    assert balance(client, resident) == 600


def test_the_same_external_id_from_another_integration_is_its_own_record(client, make_integration, resident):
    bins, scales = make_integration("device", name="bins"), make_integration("device", name="scales")

    push(client, bins, record("shared-1", card_of(resident)))
    results = push(client, scales, record("shared-1", card_of(resident))).get_json()["results"]

    assert results[0]["status"] == "created"
    assert balance(client, resident) == 400


def test_a_rejected_record_names_its_field_and_the_others_are_created(client, device, resident):
    card = card_of(resident)
    records = [
        record("ok-1", card),
        record("bad-qty", card, quantity="-1"),
        record("bad-type", card, action_type="teleporting"),
        record("bad-unit", card, unit="item"),
        record("bad-card", "000000000000"),
        record("bad-time", card, occurred_at="2026-05-01T08:00:00"),
        record("bad-extra", card, points=500),
        {"household_card": card, "action_type": "recycling", "variant": "paper", "quantity": "1", "unit": "kg",
         "occurred_at": utcnow().isoformat()},
        "not an object",
        None,
        record("ok-2", card),
    ]

    response = push(client, device, {"records": records})

    assert response.status_code == 200
    results = response.get_json()["results"]
    assert [r["status"] for r in results] == ["created"] + ["rejected"] * 9 + ["created"]
    fields = [set(r.get("errors", {})) for r in results]
    assert fields[1:10] == [{"quantity"}, {"action_type"}, {"unit"}, {"household_card"}, {"occurred_at"},
                            {"points"}, {"external_id"}, {"_schema"}, {"_schema"}]
    assert results[7]["external_id"] is None and results[8]["external_id"] is None
    assert balance(client, resident) == 400


def test_a_record_whose_row_does_not_allow_the_integrations_source_is_rejected(client, device, resident):
    # second_hand/phone may be recorded by imports only
    results = push(client, device, record("phone-1", card_of(resident), action_type="second_hand",
                                          variant="phone", quantity="1", unit="item")).get_json()["results"]

    assert results[0]["status"] == "rejected"
    assert "action_type" in results[0]["errors"]


def test_an_operator_records_with_source_import(client, operator, resident):
    results = push(client, operator, record("trip-9", card_of(resident), action_type="transit", variant="bus",
                                            quantity="10", unit="km")).get_json()["results"]

    action = db.session.get(Action, results[0]["action_id"])
    assert (action.source, action.status, action.points) == ("import", "approved", 26)


def test_more_than_1000_records_is_422_naming_records(client, device, resident):
    records = [record(f"r-{i}", card_of(resident), quantity="0.001") for i in range(1001)]

    response = push(client, device, {"records": records})

    assert "records" in assert_problem(response, 422, "validation_error")["errors"]
    assert actions_of(device.id) == []


@pytest.mark.parametrize("body, field", [
    ({"records": []}, "records"),
    ({"records": "r-1"}, "records"),
    ({"records": [], "extra": 1}, "extra"),
    ([{"external_id": "x"}], "body"),
])
def test_a_malformed_envelope_is_422(client, device, body, field):
    response = push(client, device, body)

    assert field in assert_problem(response, 422, "validation_error")["errors"]


def test_a_body_that_is_not_json_is_400(client, device):
    assert_problem(push(client, device, b"{not json"), 400, "malformed_json")


# ---------------------------------------------------------------- signatures


@pytest.mark.parametrize("tamper", ["signature", "secret", "stale", "future", "unknown", "path", "body",
                                    "no_signature", "no_timestamp", "no_id", "bad_timestamp",
                                    "query_added", "query_changed", "query_dropped"])
def test_a_request_that_is_not_properly_signed_is_401(client, device, resident, tamper):
    body = json.dumps(record("sig-1", card_of(resident))).encode()
    headers = signed_headers(device, body)
    url = "/api/v1/integrations/actions"
    if tamper == "signature":
        headers["X-Signature"] = "0" * 64
    elif tamper == "secret":
        headers = signed_headers(device, body, secret="f" * 64)
    elif tamper == "stale":
        headers = signed_headers(device, body, timestamp=int(time.time()) - 310)
    elif tamper == "future":
        headers = signed_headers(device, body, timestamp=int(time.time()) + 310)
    elif tamper == "unknown":
        headers["X-Integration-Id"] = "0" * 32
    elif tamper == "path":
        headers = signed_headers(device, body, path="/api/v1/integrations/other")
    elif tamper == "body":
        body = body.replace(b'"2"', b'"9"')
    elif tamper == "bad_timestamp":
        headers = signed_headers(device, body, timestamp="yesterday")
    elif tamper == "query_added":
        url += "?batch=7"
    elif tamper == "query_changed":
        headers = signed_headers(device, body, path=url + "?batch=7")
        url += "?batch=8"
    elif tamper == "query_dropped":
        headers = signed_headers(device, body, path=url + "?batch=7")
    else:
        del headers[{"no_signature": "X-Signature", "no_timestamp": "X-Timestamp", "no_id": "X-Integration-Id"}[tamper]]

    response = client.post(url, data=body, headers=headers)

    assert_problem(response, 401, "unauthenticated")
    assert actions_of(device.id) == []
    assert balance(client, resident) == 0


@pytest.mark.parametrize("stamp", ["1" + "0" * 400, "-" + "9" * 400, "1_700_000_000", "١٧٠٠٠٠٠٠٠٠", " 1700000000",
                                   "-1", "1e9", ""])
def test_a_timestamp_that_is_not_plain_unix_seconds_is_401(client, device, resident, stamp):
    body = json.dumps(record("ts-1", card_of(resident))).encode()

    response = client.post(ACTIONS_PATH, data=body, headers=signed_headers(device, body, timestamp=stamp))

    assert "Unix seconds" in assert_problem(response, 401, "unauthenticated")["detail"]
    assert actions_of(device.id) == []


def test_a_timestamp_just_inside_the_window_is_accepted(client, device, resident):
    response = push(client, device, record("edge-1", card_of(resident)), timestamp=int(time.time()) - 290)

    assert response.status_code == 200


def test_a_bearer_token_is_no_substitute_for_a_signature(client, admin, device):
    response = client.post("/api/v1/integrations/actions", json=record("x", "1"), headers=admin.headers)

    assert_problem(response, 401, "unauthenticated")


def test_idempotency_key_replays_per_integration(client, make_integration, resident):
    bins, scales = make_integration("device", name="bins"), make_integration("device", name="scales")
    body = record("idem-1", card_of(resident))
    stamp = int(time.time())  # read once: a first request slower than a second must not sign the retry alike

    first = push(client, bins, body, headers={"Idempotency-Key": "k-1"}, timestamp=stamp)
    again = push(client, bins, body, headers={"Idempotency-Key": "k-1"}, timestamp=stamp - 1)  # re-signed
    other = push(client, scales, body, headers={"Idempotency-Key": "k-1"})

    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json() == first.get_json()
    assert first.get_json()["results"][0]["status"] == "created"
    assert other.headers.get("Idempotent-Replayed") is None
    assert other.get_json()["results"][0]["status"] == "created"
    assert balance(client, resident) == 400


# ---------------------------------------------------------------- anomalies and caps


def test_a_quantity_far_above_the_households_median_goes_to_review(client, device, resident):
    card = card_of(resident)
    push(client, device, {"records": [record(f"h-{i}", card, quantity="1") for i in range(5)]})

    results = push(client, device, {"records": [record("big", card, quantity="5.001"),
                                                record("fine", card, quantity="5")]}).get_json()["results"]

    big, fine = (db.session.get(Action, r["action_id"]) for r in results)
    assert (big.status, big.review_reason, big.points) == ("pending", "anomalous_quantity", 0)
    assert fine.status == "approved"
    assert balance(client, resident) == 500 + 500


def test_the_median_rule_needs_five_earlier_approved_records(client, device, resident):
    card = card_of(resident)
    push(client, device, {"records": [record(f"h-{i}", card, quantity="1") for i in range(4)]})

    [result] = push(client, device, record("big", card, quantity="20")).get_json()["results"]

    assert db.session.get(Action, result["action_id"]).status == "approved"


def test_a_record_above_the_daily_cap_goes_to_review(client, device, resident):
    # paper: daily cap 50 kg
    [result] = push(client, device, record("heavy", card_of(resident), quantity="50.5")).get_json()["results"]

    assert result["status"] == "created"
    action = db.session.get(Action, result["action_id"])
    assert (action.status, action.review_reason) == ("pending", "anomalous_quantity")
    assert balance(client, resident) == 0


def test_a_record_beyond_what_the_cap_still_allows_waits_for_review(client, device, resident):
    card = card_of(resident)
    push(client, device, record("day-1", card, quantity="45"))

    [result] = push(client, device, record("day-2", card, quantity="10")).get_json()["results"]

    action = db.session.get(Action, result["action_id"])
    assert (action.status, action.review_reason) == ("pending", "exceeds_cap")
    assert balance(client, resident) == 4500


# ---------------------------------------------------------------- CSV imports

HEADER = "external_id,household_card,action_type,variant,quantity,unit,occurred_at\n"


def csv_body(*lines) -> bytes:
    return (HEADER + "".join(line + "\n" for line in lines)).encode()


def trip(external_id, card, km="10", mode="metro", when=None):
    when = when or (utcnow() - timedelta(hours=2)).astimezone(CST).isoformat()
    return f"{external_id},{card},transit,{mode},{km},km,{when}"


def upload(client, person, integration_id, body, content_type="text/csv", **headers):
    return client.post(f"/api/v1/integrations/{integration_id}/imports", data=body,
                       headers={**person.headers, "Content-Type": content_type, **headers})


def test_csv_import_records_rows_and_reports_errors_with_line_numbers(client, admin, operator, make_resident):
    first, second = make_resident(), make_resident()
    body = csv_body(
        trip("t-1", card_of(first)),
        trip("t-2", card_of(second), km="20", mode="bus"),
        trip("t-3", "999999999999"),
        trip("t-4", card_of(first), km="abc"),
        "",
        trip("t-1", card_of(first)),
        "t-6,too,few",
        trip("t-7", card_of(second), mode="rocket"),
    )

    response = upload(client, admin, operator.id, body)

    assert response.status_code == 202, response.get_data(as_text=True)
    accepted = response.get_json()
    assert set(accepted) == {"id", "status"} and accepted["status"] == "queued"
    report = client.get(f"/api/v1/imports/{accepted['id']}", headers=admin.headers).get_json()
    assert (report["status"], report["progress"], report["total_rows"]) == ("done", 100, 7)
    assert (report["created"], report["duplicates"], report["rejected"]) == (2, 1, 4)
    assert [(e["line"], e["external_id"], set(e["errors"])) for e in report["errors"]] == [
        (4, "t-3", {"household_card"}), (5, "t-4", {"quantity"}), (8, "t-6", {"row"}), (9, "t-7", {"variant"}),
    ]
    assert balance(client, first) == 46
    assert balance(client, second) == 53
    assert {a.source for a in actions_of(operator.id)} == {"import"}


def test_reimporting_the_same_file_creates_nothing_new(client, admin, operator, resident):
    body = csv_body(trip("t-1", card_of(resident)), trip("t-2", card_of(resident)), trip("t-3", "1"))
    upload(client, admin, operator.id, body)

    again = upload(client, admin, operator.id, body).get_json()
    report = client.get(f"/api/v1/imports/{again['id']}", headers=admin.headers).get_json()

    assert (report["status"], report["created"], report["duplicates"], report["rejected"]) == ("done", 0, 2, 1)
    assert len(actions_of(operator.id)) == 2
    assert balance(client, resident) == 2 * 46


def test_csv_import_processes_in_chunks_and_a_rerun_resumes_after_the_last_chunk(
    client, admin, operator, resident, monkeypatch
):
    monkeypatch.setattr(integrations, "IMPORT_CHUNK", 2)
    card = card_of(resident)
    body = csv_body(*(trip(f"c-{i}", card, km="1") for i in range(5)))
    imp = integrations.create_import(operator.id, body, "text/csv", admin.id)
    db.session.commit()
    db.session.info.pop("committed_jobs", None)  # run it by hand, chunk by chunk
    rows = integrations.csv_rows(imp.csv_text)

    assert integrations.process_import_chunk(imp.id, rows) is True
    db.session.commit()
    midway = client.get(f"/api/v1/imports/{imp.id}", headers=admin.headers).get_json()
    from app.integrations.jobs import run_import
    run_import(imp.id)
    run_import(imp.id)

    assert (midway["status"], midway["progress"], midway["created"]) == ("running", 40, 2)
    report = client.get(f"/api/v1/imports/{imp.id}", headers=admin.headers).get_json()
    assert (report["status"], report["progress"], report["created"], report["duplicates"]) == ("done", 100, 5, 0)
    assert len(actions_of(operator.id)) == 5
    assert balance(client, resident) == 5 * 4


@pytest.mark.parametrize("body, content_type, status, code, field", [
    (b"a,b\n1,2\n", "text/csv", 422, "validation_error", "header"),
    (HEADER.encode(), "text/csv", 422, "validation_error", "body"),
    (b"\xff\xfe" + HEADER.encode(), "text/csv", 422, "validation_error", "body"),
    (HEADER.encode() + b"x,\x00,y\n", "text/csv", 422, "validation_error", "body"),
    (b'{"records": []}', "application/json", 415, "unsupported_media_type", None),
    (HEADER.encode() + b"x" * (2 * 1024 * 1024), "text/csv", 413, "payload_too_large", None),
])
def test_a_bad_csv_upload_is_refused(client, admin, operator, body, content_type, status, code, field):
    response = upload(client, admin, operator.id, body, content_type)

    problem = assert_problem(response, status, code)
    if field:
        assert field in problem["errors"]
    assert db.session.scalar(select(func.count()).select_from(IntegrationImport)) == 0


def test_csv_import_for_unknown_or_inactive_integration_is_refused(client, admin, operator):
    assert_problem(upload(client, admin, "nope", csv_body("x")), 404, "not_found")
    integrations.deactivate_integration(operator.id)
    db.session.commit()
    assert_problem(upload(client, admin, operator.id, csv_body("x")), 409, "invalid_state")


def test_only_district_admins_import_and_read_imports(client, admin, staff, operator, resident):
    accepted = upload(client, admin, operator.id, csv_body(trip("t-1", card_of(resident)))).get_json()

    assert_problem(upload(client, staff, operator.id, csv_body("x")), 403, "forbidden")
    assert_problem(client.get(f"/api/v1/imports/{accepted['id']}", headers=resident.headers), 403, "forbidden")
    assert_problem(client.get("/api/v1/imports/nope", headers=admin.headers), 404, "not_found")


def test_csv_upload_with_idempotency_key_queues_one_import(client, admin, operator, resident):
    body = csv_body(trip("t-1", card_of(resident)))

    first = upload(client, admin, operator.id, body, **{"Idempotency-Key": "csv-1"})
    again = upload(client, admin, operator.id, body, **{"Idempotency-Key": "csv-1"})

    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json() == first.get_json()
    assert db.session.scalar(select(func.count()).select_from(IntegrationImport)) == 1


# ---------------------------------------------------------------- command line


def test_cli_create_prints_the_key_id_and_secret_once(app, resident, factor_set, client):
    result = app.test_cli_runner().invoke(args=["integrations", "create", "--name", "泗泾回收站", "--kind", "device"])

    assert result.exit_code == 0, result.output
    lines = dict(line.split(":", 1) for line in result.output.splitlines() if line.startswith(("X-", "secret")))
    signer = type("S", (), {"id": lines["X-Integration-Id"].strip(), "secret": lines["secret"].strip()})
    response = push(client, signer, record("cli-1", card_of(resident)))
    assert response.get_json()["results"][0]["status"] == "created"
    listed = app.test_cli_runner().invoke(args=["integrations", "list"])
    assert signer.id in listed.output and signer.secret not in listed.output


def test_cli_import_runs_the_file(app, tmp_path, operator, resident):
    path = tmp_path / "trips.csv"
    path.write_bytes(csv_body(trip("t-1", card_of(resident)), trip("t-2", "1")))

    result = app.test_cli_runner().invoke(args=["integrations", "import", operator.id, str(path)])

    assert result.exit_code == 0, result.output
    assert "1 created" in result.output and "1 rejected" in result.output


def test_a_signature_with_non_ascii_characters_is_401(client, device, resident):
    raw = json.dumps(record("trip-x", card_of(resident))).encode()
    headers = {**signed_headers(device, raw), "X-Signature": "é" * 64}

    reply = client.post("/api/v1/integrations/actions", data=raw, headers=headers)

    assert reply.status_code == 401 and reply.get_json()["code"] == "unauthenticated"
