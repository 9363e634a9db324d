"""rows.write_new: a new row by one INSERT, then an ordinary loaded object of the session."""
import pytest
from sqlalchemy import event, select

from app.accounts.models import Community
from app.columns import new_id
from app.extensions import db
from app.rows import write_new


def _statements(run):
    seen = []
    record = lambda conn, cursor, statement, *rest: seen.append(statement.split()[0].upper())  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", record)
    try:
        run()
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    return [s for s in seen if s not in ("SAVEPOINT", "RELEASE")]


def test_a_new_row_is_one_insert_and_the_object_is_then_loaded_and_clean(community):
    row = Community(id=new_id(), street_id=community.street_id, name="新桥", is_demo=False, position=99)

    assert _statements(lambda: write_new(row)) == ["INSERT"]
    assert row in db.session and not db.session.is_modified(row)
    assert _statements(lambda: (row.name, row.is_demo, row.street_id)) == []  # nothing to read back
    db.session.expire_all()
    assert db.session.scalar(select(Community.name).where(Community.id == row.id)) == "新桥"


def test_a_change_after_it_is_written_is_an_update_with_the_next_flush(community):
    row = Community(id=new_id(), street_id=community.street_id, name="新桥", is_demo=False, position=99)
    write_new(row)
    row.name = "泗泾"

    assert _statements(db.session.flush) == ["UPDATE"]
    db.session.expire_all()
    assert db.session.get(Community, row.id).name == "泗泾"


def test_an_object_already_in_the_session_is_left_to_the_unit_of_work(community):
    assert _statements(lambda: write_new(community)) == []


def test_a_column_default_left_unset_is_refused_not_written_as_null(community):
    row = Community(street_id=community.street_id, name="新桥", position=99)  # no id, no is_demo

    with pytest.raises(ValueError, match="id, is_demo"):
        write_new(row)
    assert db.session.scalar(select(Community).where(Community.name == "新桥")) is None
