"""Integration rules directly: secrets, the duplicate guard, the anomaly rule, CSV parsing, the import job."""
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.activities.models import Action
from app.errors import InvalidState, Unauthenticated, ValidationFailed
from app.extensions import db
from app.integrations import records
from app.integrations import service as integrations
from app.integrations.jobs import run_import
from app.integrations.models import ImportRowError, Integration, IntegrationImport
from app.integrations.schemas import RecordIn
from app.ledger import service as ledger
from app.ledger.models import LedgerEntry
from tests.integrations.conftest import card_of, record
from tests.integrations.test_routes import HEADER, csv_body, trip


def load(raw: dict) -> dict:
    return RecordIn().load(raw)


# ---------------------------------------------------------------- secrets


def test_the_secret_is_random_stored_encrypted_and_does_not_hang_off_secret_key(app, factor_set, monkeypatch):
    first, first_secret = integrations.create_integration(name="a", kind="device")
    second, second_secret = integrations.create_integration(name="b", kind="partner")

    assert first_secret != second_secret and len(first_secret) == 64
    assert integrations.secret_of(first) == first_secret
    assert second.source == "import"
    stored = " ".join(str(getattr(first, c.name)) for c in Integration.__table__.columns)
    assert first_secret not in stored
    assert first.secret_encrypted.startswith("dev:")  # the data key's id: no DATA_KEYS in the tests
    monkeypatch.setitem(app.config, "SECRET_KEY", "another-secret-key-of-enough-length-0123")
    assert integrations.secret_of(first) == first_secret


def test_signing_integration_refuses_unknown_inactive_and_oversized_ids(device):
    assert integrations.signing_integration(device.id).id == device.id
    for bad in (None, "", "x" * 33, "0" * 32):
        with pytest.raises(Unauthenticated):
            integrations.signing_integration(bad)
    integrations.deactivate_integration(device.id)
    with pytest.raises(Unauthenticated):
        integrations.signing_integration(device.id)
    with pytest.raises(InvalidState):
        integrations.deactivate_integration(device.id)


# ---------------------------------------------------------------- the duplicate guard


def test_a_concurrent_insert_of_the_same_external_id_is_reported_as_duplicate(device, resident, monkeypatch):
    # Another transaction recorded "late-1" after this batch looked for received ids.
    integrations.ingest_records(device.integration, [record("late-1", card_of(resident))])
    real = records.received_external_ids
    calls = []

    def missed_first_time(integration_id, external_ids):
        calls.append(set(external_ids))
        return set() if len(calls) == 1 else real(integration_id, external_ids)

    monkeypatch.setattr(records, "received_external_ids", missed_first_time)

    results = integrations.ingest_records(device.integration, [record("late-1", card_of(resident)),
                                                               record("late-2", card_of(resident))])

    assert [r["status"] for r in results] == ["duplicate", "created"]
    assert calls[1] == {"late-1"}  # the insert skipped it (unique constraint), and it was then found
    assert db.session.scalars(select(Action.external_id).where(Action.integration_id == device.id)).all() \
        .count("late-1") == 1
    assert ledger.account_of("household", resident.household_id).balance == 400


def test_records_are_written_in_external_id_order_but_reported_in_input_order(device, resident):
    records = [record(name, card_of(resident), quantity="1") for name in ("c", "a", "b")]

    results = integrations.ingest_records(device.integration, records)

    assert [r["external_id"] for r in results] == ["c", "a", "b"]
    wallet = ledger.account_of("household", resident.household_id)
    credited = db.session.scalars(
        select(Action.external_id).join(LedgerEntry, LedgerEntry.ref_id == Action.id)
        .where(LedgerEntry.account_id == wallet.id).order_by(LedgerEntry.seq)
    ).all()
    assert credited == ["a", "b", "c"]


def test_a_rejected_first_occurrence_does_not_make_the_next_one_a_duplicate(device, resident):
    results = integrations.ingest_records(device.integration, [
        record("fix-1", card_of(resident), unit="item"), record("fix-1", card_of(resident)),
    ])

    assert [r["status"] for r in results] == ["rejected", "created"]


# ---------------------------------------------------------------- anomalies


def approved_history(device, resident, quantities):
    records = [record(f"h-{i}", card_of(resident), quantity=q) for i, q in enumerate(quantities)]
    results = integrations.ingest_records(device.integration, records)
    assert {r["status"] for r in results} == {"created"}


def test_anomaly_is_more_than_five_times_the_median_of_the_last_20_approved(device, resident):
    approved_history(device, resident, ["1", "1", "2", "3", "40"])  # median 2

    assert integrations.anomaly_reason(resident.household_id, load(record("x", "c", quantity="10"))) is None
    assert integrations.anomaly_reason(resident.household_id, load(record("x", "c", quantity="10.001"))) \
        == "anomalous_quantity"


def test_anomaly_history_is_per_action_type_and_variant(device, resident):
    approved_history(device, resident, ["1"] * 5)

    pet = load(record("x", "c", variant="pet", quantity="20"))

    assert integrations.anomaly_reason(resident.household_id, pet) is None


def test_anomaly_over_the_whole_daily_cap_needs_no_history(resident, factor_set):
    at_cap = load(record("x", "c", quantity="50"))
    above = load(record("x", "c", quantity="50.001"))

    assert integrations.anomaly_reason(resident.household_id, at_cap) is None
    assert integrations.anomaly_reason(resident.household_id, above) == "anomalous_quantity"


def test_anomaly_check_leaves_unknown_rows_to_record_action(resident, factor_set):
    unknown = load(record("x", "c", action_type="levitation"))

    assert integrations.anomaly_reason(resident.household_id, unknown) is None


# ---------------------------------------------------------------- CSV parsing and the import job


def test_csv_rows_carry_the_line_where_each_row_starts():
    text = HEADER + 'a,1,transit,metro,1,km,2026-11-01T08:00:00+08:00\n\n"b\nline two",2,x,y,1,km,t\nc,3\n'

    rows = integrations.csv_rows(text)

    assert [line for line, _ in rows] == [2, 4, 6]
    assert rows[1][1]["external_id"] == "b\nline two"
    assert rows[2][1] == ["c", "3"]


@pytest.mark.parametrize("text", ["external_id,household_card\n", "", "\ufeff" + HEADER.upper()])
def test_csv_rows_refuse_a_wrong_header(text):
    with pytest.raises(ValidationFailed) as caught:
        integrations.csv_rows(text)

    assert "header" in caught.value.extra["errors"]


def test_the_import_job_is_idempotent_once_done(operator, resident, admin):
    imp = integrations.create_import(operator.id, csv_body(trip("t-1", card_of(resident)), trip("t-2", "1")),
                                     "text/csv", admin.id)
    db.session.commit()
    db.session.info.pop("committed_jobs", None)

    run_import(imp.id)
    run_import(imp.id)

    imp = db.session.get(IntegrationImport, imp.id)
    assert (imp.status, imp.created_count, imp.rejected_count, imp.processed_rows) == ("done", 1, 1, 2)
    errors = db.session.scalars(select(ImportRowError).where(ImportRowError.import_id == imp.id)).all()
    assert [(e.line, e.external_id) for e in errors] == [(3, "t-2")]
    assert ledger.account_of("household", resident.household_id).balance == 46


def test_a_failing_import_is_marked_failed(operator, admin, monkeypatch):
    imp = integrations.create_import(operator.id, csv_body("x,1,transit,metro,1,km,2026-11-01T08:00:00+08:00"),
                                     "text/csv", admin.id)
    db.session.commit()
    db.session.info.pop("committed_jobs", None)

    def broken(integration, records):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(integrations, "ingest_records", broken)
    with pytest.raises(RuntimeError):
        run_import(imp.id)

    assert db.session.get(IntegrationImport, imp.id).status == "failed"


def test_record_quantities_stay_decimal():
    loaded = load(record("x", "c", quantity="1.25"))

    assert loaded["quantity"] == Decimal("1.25") and isinstance(loaded["quantity"], Decimal)
