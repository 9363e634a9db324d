"""A connection lost under a statement on the driver's path (app/driver.py): SQLAlchemy's error, the
connection invalidated, and the next unit of work runs on a new one, as through Core."""
import pytest
from sqlalchemy import Integer, String, bindparam, select, update
from sqlalchemy.exc import OperationalError

from app import driver
from app.accounts.models import Community
from app.extensions import core, db
from tests.faults import needs_postgres_and_redis
from tests.faults.test_database_drop import _terminate

pytestmark = [pytest.mark.committing, needs_postgres_and_redis]

TABLE = Community.__table__
MOVE = (update(TABLE).where(TABLE.c.id == bindparam("cid", type_=String))
        .values(position=bindparam("to", type_=Integer)).returning(TABLE.c.position))


def test_a_lost_connection_is_cores_error_and_the_next_unit_of_work_reconnects(community):
    db.session.commit()
    core(MOVE, {"cid": community.id, "to": 1})
    assert isinstance(core(MOVE, {"cid": community.id, "to": 2}), driver.Result)
    db.session.commit()
    pid = db.session.connection().connection.driver_connection.info.backend_pid

    _terminate(pid)
    with pytest.raises(OperationalError) as raised:
        core(MOVE, {"cid": community.id, "to": 3})

    assert raised.value.connection_invalidated
    db.session.rollback()
    assert core(MOVE, {"cid": community.id, "to": 4}).scalar() == 4
    assert db.session.connection().connection.driver_connection.info.backend_pid != pid
    db.session.commit()
    assert db.session.scalar(select(Community.position).where(Community.id == community.id)) == 4
