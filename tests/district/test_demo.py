"""seed-demo shows the whole chain: verified demo actions, a batch, a park, a transfer and a retirement."""
from sqlalchemy import func, select

from app.cli import DEMO_PASSWORD
from app.district.demo import PARK_MANAGER_PHONE, PARK_NAME
from app.district.models import Park, ParkTransfer, ReductionBatch, Retirement
from app.extensions import db
from tests.district.conftest import API


def _count(model):
    return db.session.scalar(select(func.count()).select_from(model))


def test_seed_demo_issues_a_batch_transfers_and_retires_once(app, client):
    first = app.test_cli_runner().invoke(args=["seed-demo"])
    second = app.test_cli_runner().invoke(args=["seed-demo"])

    assert first.exit_code == 0 and second.exit_code == 0, (first.output, second.output, repr(second.exception))
    assert f"park manager     {PARK_MANAGER_PHONE}" in first.output
    assert [_count(m) for m in (Park, ReductionBatch, ParkTransfer, Retirement)] == [1, 1, 1, 1]
    login = client.post(f"{API}/auth/login", json={"phone": PARK_MANAGER_PHONE, "password": DEMO_PASSWORD}).get_json()
    park = db.session.scalar(select(Park).where(Park.name == PARK_NAME))
    statement = client.get(f"{API}/parks/{park.id}/statement",
                           headers={"Authorization": f"Bearer {login['access_token']}"}).get_json()
    assert statement["received_g"] > statement["retired_g"] > 0
    assert statement["batches"][0]["serial_label"].startswith("SJ-")
