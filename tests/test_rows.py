"""rows: a new row by one INSERT, then an ordinary loaded object of the session; objects built as the
ORM's loader builds them (new, detached, loaded, set_loaded) behave as the ORM's own."""
import pytest
from sqlalchemy import event, inspect, select
from sqlalchemy.orm import make_transient_to_detached

from app.accounts.models import Community, Street
from app.columns import new_id
from app.extensions import db
from app.rows import detached, loaded, new, set_loaded, write_new


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


def _values(community, **changes):
    return {"id": community.id, "street_id": community.street_id, "name": community.name,
            "is_demo": community.is_demo, "position": community.position, **changes}


def test_new_makes_the_object_the_constructor_makes_and_it_is_written_with_those_values(community):
    row = new(Community, id=new_id(), street_id=community.street_id, name="新桥", is_demo=False, position=7)

    assert inspect(row).transient and (row.name, row.position, row.is_demo) == ("新桥", 7, False)
    row.position = 8  # an ordinary change before it is written
    db.session.add(row)
    assert _statements(db.session.flush) == ["INSERT"]
    db.session.expire_all()
    assert db.session.scalar(select(Community.position).where(Community.id == row.id)) == 8


def test_new_sets_a_relationship_as_the_constructor_does_and_refuses_an_unknown_keyword(community):
    street = db.session.get(Street, community.street_id)
    row = new(Community, id=new_id(), street=street, name="新桥", is_demo=False, position=7)
    db.session.add(row)
    db.session.flush()
    assert row.street_id == street.id

    with pytest.raises(TypeError, match="'colour' is an invalid keyword argument for Community"):
        new(Community, id=new_id(), colour="green")


def test_detached_is_what_make_transient_to_detached_makes(community):
    fast = detached(Community, _values(community, id=new_id(), name="新桥"))
    slow = Community(**_values(community, id=fast.id, name="新桥"))
    make_transient_to_detached(slow)

    for obj in (fast, slow):
        state = inspect(obj)
        assert state.detached and state.key == (Community, (fast.id,), None)
        assert not state.committed_state and not state.modified
    assert {k: v for k, v in vars(fast).items() if not k.startswith("_")} == \
        {k: v for k, v in vars(slow).items() if not k.startswith("_")}


def test_a_detached_copy_merged_without_loading_reads_nothing_and_writes_only_a_change(community):
    copy = detached(Community, _values(community))
    db.session.expunge(community)

    merged = _statements(lambda: db.session.merge(copy, load=False))
    assert merged == []
    held = db.session.get(Community, community.id)
    assert _statements(lambda: (held.name, held.position)) == []
    assert _statements(db.session.flush) == []  # nothing changed, nothing written
    held.name = "泗泾"
    assert _statements(db.session.flush) == ["UPDATE"]


def test_detached_without_every_column_takes_the_orms_way_and_the_missing_one_is_expired(community):
    values = _values(community, id=new_id())
    del values["position"]

    obj = detached(Community, values)

    state = inspect(obj)
    assert state.detached and "position" in state.expired_attributes


def test_loaded_attaches_the_row_clean_and_refreshes_a_held_copy(community):
    obj = loaded(Community, _values(community, position=42))  # the session holds `community`

    assert obj is community and community.position == 42
    assert not db.session.is_modified(community)
    other = loaded(Community, _values(community, id=new_id(), name="新桥"))
    assert inspect(other).persistent and not db.session.is_modified(other)


def test_set_loaded_keeps_a_pending_change_of_another_column(community):
    community.name = "泗泾"  # pending

    set_loaded(community, {"position": 42})

    assert community.position == 42
    assert inspect(community).attrs.name.history.added == ["泗泾"]
    assert not inspect(community).attrs.position.history.has_changes()
    db.session.flush()
    db.session.expire_all()
    stored = db.session.get(Community, community.id)
    assert stored.name == "泗泾" and stored.position != 42  # the committed value is not written
