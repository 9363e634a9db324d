"""Redis stops while the API serves: reads and writes go on, limits still count, jobs wait and run once it is back."""
import pytest
import requests
from sqlalchemy import func, select

from app.activities.models import Action
from app.extensions import db
from app.integrations.models import IntegrationImport
from app.jobs import Job
from app.ledger import service as ledger
from tests.activities.conftest import action_body
from tests.faults import needs_postgres_and_redis
from tests.fixtures import PASSWORD
from tests.integrations.conftest import card_of
from tests.integrations.test_routes import csv_body, trip

pytestmark = [pytest.mark.committing, needs_postgres_and_redis]


def _wallet(api, person) -> int:
    reply = requests.get(f"{api}/api/v1/wallet", headers=person.headers, timeout=10)
    assert reply.status_code == 200, reply.text
    return reply.json()["balance"]


def _import_rows(operator_id):
    db.session.remove()
    return db.session.scalar(select(func.count()).select_from(Action).where(Action.integration_id == operator_id))


def test_with_redis_down_the_api_serves_and_its_jobs_run_once_redis_is_back(
        factor_set, admin, operator, resident, clerk, reward, fund, private_redis, processes):
    fund(resident.household_id, 1000)
    card = card_of(resident)
    api = processes.api(REDIS_URL=private_redis.url, JOBS_INLINE="false", LOGIN_FAILURE_LIMIT="3 per minute",
                        RATELIMIT_KEY_PREFIX=f"sjc-fault-{private_redis.port}")
    assert requests.get(f"{api}/healthz", timeout=10).json()["redis"] == "ok"

    private_redis.stop()

    health = requests.get(f"{api}/healthz", timeout=10)
    assert health.status_code == 503
    assert (health.json()["database"], health.json()["redis"]) == ("ok", "error")
    assert _wallet(api, resident) == 1000
    logged = requests.post(f"{api}/api/v1/actions", json=action_body(), headers=resident.headers, timeout=10)
    assert logged.status_code == 201, logged.text
    code = requests.post(f"{api}/api/v1/redemption-codes", json={"reward_id": reward.id},
                         headers=resident.headers, timeout=10)
    assert code.status_code == 201, code.text
    redeemed = requests.post(f"{api}/api/v1/merchant/redemptions", json={"code": code.json()["code"]},
                             headers=clerk.headers, timeout=10)
    assert redeemed.status_code == 201, redeemed.text
    assert _wallet(api, resident) == 1000 - reward.points_cost
    wrong = [requests.post(f"{api}/api/v1/auth/login", json={"phone": resident.user.phone, "password": "wrong-1"},
                           timeout=10).status_code for _ in range(5)]
    assert wrong == [401, 401, 401, 429, 429]  # the limit still holds, counted in this process's memory
    uploaded = requests.post(f"{api}/api/v1/integrations/{operator.id}/imports",
                             data=csv_body(*(trip(f"down-{i}", card, km="1") for i in range(5))),
                             headers={**admin.headers, "Content-Type": "text/csv"}, timeout=10)
    assert uploaded.status_code == 202, uploaded.text
    report = requests.get(f"{api}/api/v1/imports/{uploaded.json()['id']}", headers=admin.headers, timeout=10)
    assert report.json()["status"] == "queued"  # committed, waiting for Redis: not lost, not run

    private_redis.start()  # empty: whatever RQ held in memory is gone too

    assert requests.get(f"{api}/healthz", timeout=10).status_code == 200
    worker_env = {"REDIS_URL": private_redis.url, "JOB_REQUEUE_AFTER_SECONDS": 0}
    processes.finish(processes.flask("worker", "worker", "--burst", **worker_env))
    report = requests.get(f"{api}/api/v1/imports/{uploaded.json()['id']}", headers=admin.headers, timeout=10)
    assert (report.json()["status"], report.json()["created"]) == ("done", 5)
    assert _import_rows(operator.id) == 5
    after_import = _wallet(api, resident)

    # Pushing everything again and running another worker changes nothing: each job ran once.
    processes.finish(processes.flask("requeue", "jobs", "requeue", "--older-than", "0", **worker_env))
    processes.finish(processes.flask("worker-again", "worker", "--burst", **worker_env))

    assert _import_rows(operator.id) == 5 and _wallet(api, resident) == after_import
    assert db.session.scalar(select(func.count()).select_from(IntegrationImport)) == 1
    assert db.session.scalars(select(Job.state)).all() == ["done"]
    assert ledger.verify() == []
