"""The database connection drops: a 503 problem that says to retry, nothing half written, the next request works."""
import time

import psycopg
import pytest
from sqlalchemy import event, func, select

from app.activities.models import Action
from app.extensions import db
from app.ledger import service as ledger
from tests.faults import needs_postgres_and_redis, plain_url
from tests.integrations.conftest import balance, card_of, push, record

pytestmark = [pytest.mark.committing, needs_postgres_and_redis]


def _terminate(pid: int) -> None:
    """From another connection, as an operator or a failover would: end the backend and wait until it is gone."""
    with psycopg.connect(plain_url(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        for _ in range(100):
            if not admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
                return
            time.sleep(0.02)


@pytest.fixture
def drop_connection_before(app):
    """Arm a one-shot fault: the app's connection is terminated just before a statement starting with `prefix`."""
    armed = {}

    def before(conn, cursor, statement, parameters, context, executemany):
        prefix = armed.get("prefix")
        if prefix and statement.lstrip().upper().startswith(prefix):
            armed.clear()
            _terminate(cursor.connection.info.backend_pid)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", before)
    yield lambda prefix: armed.update(prefix=prefix.upper())
    event.remove(engine, "before_cursor_execute", before)


def _credited(device):
    return db.session.scalar(select(func.count()).select_from(Action).where(Action.integration_id == device.id))


def test_a_connection_dropped_mid_request_is_a_503_that_says_retry_and_leaves_nothing_half_written(
        client, device, resident, drop_connection_before):
    card = card_of(resident)
    push(client, device, record("warm-up", card))
    before = balance(client, resident)  # one record's points
    drop_connection_before("INSERT INTO ledger_entries")  # the action row is already written by then

    response = push(client, device, record("cut-1", card))

    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "database_unavailable"
    assert int(response.headers["Retry-After"]) > 0
    db.session.remove()
    assert _credited(device) == 1  # only the warm-up: the cut request's action was rolled back
    assert balance(client, resident) == before
    assert ledger.verify() == []

    again = push(client, device, record("cut-1", card))

    assert again.status_code == 200 and again.get_json()["results"][0]["status"] == "created"
    assert balance(client, resident) == 2 * before
    db.session.remove()
    assert _credited(device) == 2
    assert ledger.verify() == []


def test_a_connection_dropped_between_requests_is_replaced_unnoticed(client, device, resident):
    """The pool's checkout sees the server closed the pooled connection and opens another (no pre-ping)."""
    card = card_of(resident)
    push(client, device, record("warm-up", card))
    with db.engine.connect() as conn:  # the pool hands this same connection to the next request
        pid = conn.connection.dbapi_connection.info.backend_pid
    _terminate(pid)

    response = push(client, device, record("after-drop", card))

    assert response.status_code == 200, response.get_data(as_text=True)
    db.session.remove()
    assert _credited(device) == 2
