"""Pre-built statements on the driver's cursor (app/driver.py): the same rows, values, counts and
errors as Core gives, on PostgreSQL; SQLite, and any connection something listens to, stay on Core."""
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import Integer, String, bindparam, event, insert, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError, NoResultFound

from app import driver
from app.accounts.models import Community
from app.columns import UTCDateTime, Dec, new_id
from app.extensions import core, db

TABLE = Community.__table__
RENAME = (update(TABLE).where(TABLE.c.id == bindparam("cid", type_=String))
          .values(name=bindparam("new_name", type_=String)).returning(TABLE.c.id, TABLE.c.name, TABLE.c.position))
MOVE = update(TABLE).where(TABLE.c.id == bindparam("cid", type_=String)).values(position=bindparam("to", type_=Integer))
TYPED = select(bindparam("at", type_=UTCDateTime).label("at"), bindparam("amount", type_=Dec(18, 6)).label("amount"))
ADD = insert(TABLE)


def _twice(statement, params):
    """The first run (Core, which the driver leaves a statement it sees for the first time) and the second."""
    return core(statement, params), core(statement, params)


def test_a_prebuilt_statement_runs_on_the_driver_with_cores_rows(community, is_postgres):
    first, second = _twice(RENAME, {"cid": community.id, "new_name": "新桥"})
    first_rows = first.all()

    assert isinstance(first, CursorResult)
    assert isinstance(second, driver.Result) == is_postgres  # SQLite: Core every time
    rows = second.all()
    assert [tuple(r) for r in rows] == [tuple(r) for r in first_rows] == [(community.id, "新桥", community.position)]
    row = rows[0]
    assert (row.id, row.name) == (community.id, "新桥")
    assert row._asdict() == dict(row._mapping) == {"id": community.id, "name": "新桥", "position": community.position}
    db.session.expire_all()
    assert db.session.get(Community, community.id).name == "新桥"


def test_scalars_one_first_and_rowcount_match_core(community, make_community):
    other = make_community(name="泗泾")
    for result in _twice(MOVE, {"cid": community.id, "to": 7}):
        assert result.rowcount == 1
    for result in _twice(MOVE, {"cid": "nobody", "to": 7}):
        assert result.rowcount == 0
    for result in _twice(RENAME, {"cid": other.id, "new_name": "泗泾镇"}):
        assert result.scalar() == other.id
    for result in _twice(RENAME, {"cid": other.id, "new_name": "泗泾镇"}):
        assert list(result.scalars()) == [other.id]
    for result in _twice(RENAME, {"cid": "nobody", "new_name": "x"}):
        assert result.first() is None
    for result in _twice(RENAME, {"cid": "nobody", "new_name": "x"}):
        assert result.scalar_one_or_none() is None
    for result in _twice(RENAME, {"cid": other.id, "new_name": "泗泾镇"}):
        assert [dict(m) for m in result.mappings()] == [{"id": other.id, "name": "泗泾镇", "position": other.position}]
    for result in _twice(RENAME, {"cid": "nobody", "new_name": "x"}):
        with pytest.raises(NoResultFound):
            result.one()
    db.session.expire_all()
    assert (db.session.get(Community, community.id).position, db.session.get(Community, other.id).name) == (7, "泗泾镇")


def test_typed_columns_come_back_processed_as_core_gives_them():
    at = datetime(2026, 12, 3, 8, 30, tzinfo=timezone(timedelta(hours=8)))
    first, second = _twice(TYPED, {"at": at, "amount": Decimal("0.123456")})

    expected = (datetime(2026, 12, 3, 0, 30, tzinfo=timezone.utc), Decimal("0.123456"))
    first_row, second_row = first.one(), second.one()
    assert tuple(first_row) == tuple(second_row) == expected
    assert second_row.at.tzinfo == timezone.utc


def test_executemany_writes_every_row(community, make_community):
    other = make_community(name="泗泾")
    core(MOVE, [{"cid": community.id, "to": 1}, {"cid": other.id, "to": 2}])
    core(MOVE, [{"cid": community.id, "to": 11}, {"cid": other.id, "to": 12}])

    db.session.expire_all()
    assert (db.session.get(Community, community.id).position, db.session.get(Community, other.id).position) == (11, 12)


def test_a_refused_write_raises_the_error_core_raises_and_the_transaction_rolls_back(community):
    row = {"id": new_id(), "street_id": community.street_id, "name": "唯一", "is_demo": False, "position": 1}
    core(ADD, row)
    core(ADD, {**row, "id": new_id(), "name": "另一个"})  # the second run of ADD: on the driver on PostgreSQL
    with pytest.raises(IntegrityError):
        core(ADD, {**row, "id": new_id()})  # (street, name) is unique
    db.session.rollback()
    assert db.session.scalar(select(Community.id).where(Community.name == "唯一")) is None


def test_a_listener_sees_every_statement(community):
    seen = []
    record = lambda conn, cursor, statement, *rest: seen.append(statement.split()[0])  # noqa: E731
    core(MOVE, {"cid": community.id, "to": 3})
    event.listen(db.engine, "before_cursor_execute", record)
    try:
        core(MOVE, {"cid": community.id, "to": 4})
        result = core(MOVE, {"cid": community.id, "to": 5})
    finally:
        event.remove(db.engine, "before_cursor_execute", record)

    assert seen == ["UPDATE", "UPDATE"]
    assert isinstance(result, CursorResult)
    assert isinstance(core(MOVE, {"cid": community.id, "to": 6}), driver.Result) == (db.engine.dialect.name == "postgresql")


def test_a_statement_with_a_python_side_default_is_left_to_core(community):
    # Community.id has a Python default (new_id): Core computes it, so the driver declines the statement.
    row = {"street_id": community.street_id, "is_demo": False, "position": 1}
    results = [core(ADD, {**row, "name": name}) for name in ("甲", "乙", "丙")]

    assert all(isinstance(result, CursorResult) for result in results)
    names = db.session.scalars(select(Community.name).where(Community.name.in_(["甲", "乙", "丙"]))).all()
    assert sorted(names) == sorted(["甲", "乙", "丙"])
