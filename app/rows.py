"""New rows written by one pre-built INSERT instead of the unit of work.

On a hot path the ORM's flush of one new object (dependency sort, state bookkeeping, its INSERT
compiled from the object's history) costs more than the INSERT itself. `write_new(obj)` runs the
class's INSERT, compiled once per process, with every column of the object, and then hands the
object to the session as if it had been loaded: a later change to it is an ordinary UPDATE with
the next flush. `loaded(cls, values)` does the same for a row a Core statement read, and
`detached(cls, values)` builds such an object outside any session (for `Session.merge(load=False)`).
Imports nothing of the features.
"""
import functools

from sqlalchemy import insert, inspect
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import instance_state, set_committed_value

from .extensions import core, db


@functools.cache
def _shape(cls) -> tuple:
    """The class's mapper, its columns' attribute keys (None when one differs from its column's key:
    then objects are built the ORM's own way) and its primary key's."""
    mapper = inspect(cls)
    columns = frozenset(attr.key for attr in mapper.column_attrs)
    if columns != frozenset(column.key for column in cls.__table__.columns):
        columns = None
    return mapper, columns, tuple(column.key for column in mapper.primary_key)


def new(cls, **values):
    """A new (transient) object, as `cls(**values)` makes it, for a fraction of the cost: its columns'
    values go straight into its dict, as the ORM's loader fills an object, instead of through an
    attribute event each; relationships are set as usual. Flushed or passed to `write_new`, it is
    written with exactly these values."""
    mapper, columns, _ = _shape(cls)
    if columns is None:
        return cls(**values)
    obj = mapper.class_manager.new_instance()
    state = obj.__dict__
    for key, value in values.items():
        if key in columns:
            state[key] = value
        elif key in mapper.relationships:
            setattr(obj, key, value)
        else:
            raise TypeError(f"{key!r} is an invalid keyword argument for {cls.__name__}")
    return obj

@functools.cache
def _insert_of(cls) -> tuple:
    """The class's INSERT, its column keys, and the keys of columns with a default."""
    table = cls.__table__
    return (insert(table), [column.key for column in table.columns],
            [column.key for column in table.columns if column.default is not None])


def write_new(obj) -> None:
    """INSERT a new (transient) object's row now and attach it, loaded; an object already in a
    session is left to the unit of work. Does not commit."""
    if not instance_state(obj).transient:
        return
    statement, keys, defaulted = _insert_of(type(obj))
    if _shape(type(obj))[1] is None:
        values = {key: getattr(obj, key) for key in keys}
    else:  # what getattr gives for a new object's column: its value, or None when never set
        values = {key: obj.__dict__.get(key) for key in keys}
    missing = [key for key in defaulted if values[key] is None]
    if missing:  # a column default the ORM would have applied: the callers set every such column
        raise ValueError(f"{type(obj).__name__} written without {', '.join(missing)}")
    core(statement, values)
    for key, value in values.items():
        obj.__dict__.setdefault(key, value)  # never set: written as NULL, nothing to read back
    make_transient_to_detached(obj)
    db.session.add(obj)


def loaded(cls, values: dict, *, refresh: bool = True):
    """The session's object of a row read by a Core statement (every column in `values`), as if the
    ORM had loaded it: no query, no history. One the session already holds gets these values
    (`populate_existing`), unless `refresh` is False (the row cannot have changed)."""
    session = db.session()
    mapper, _, primary_key = _shape(cls)
    held = session.identity_map.get(mapper.identity_key_from_primary_key([values[key] for key in primary_key]))
    if held is None:
        obj = detached(cls, values)
        _enter(session, obj)
        return obj
    if refresh:
        set_loaded(held, values)
    return held


_update_impl = getattr(Session, "_update_impl", None)


def _enter(session, obj) -> None:
    """Put a detached object that holds no related objects into the session, as `Session.add` does
    but without walking its relationships for objects to cascade to (it holds none): the ORM's own
    step for a detached object, where this SQLAlchemy has it, else `Session.add`."""
    if _update_impl is None:
        session.add(obj)
    else:
        _update_impl(session, instance_state(obj))


def set_loaded(obj, values: dict) -> None:
    """Give an object of the session these column values as loaded: no history, nothing to write
    (`set_committed_value` for each). An object without pending changes or expired attributes, as
    the hot paths' rows are, gets them straight into its dict, which is what that amounts to."""
    state = instance_state(obj)
    if state.committed_state or state.expired_attributes or state.callables:
        for key, value in values.items():
            set_committed_value(obj, key, value)
    else:
        obj.__dict__.update(values)


def detached(cls, values: dict, **related):
    """An object of `cls` for a row that exists (every column in `values`, `related` objects set),
    as if loaded and then detached: no history, nothing to write, in no session.

    Built as the ORM's loader builds an object (its dict filled, no attribute events), which costs a
    fraction of `cls(**values)` and `make_transient_to_detached`; the same result, as
    tests/test_rows.py checks. A class whose attribute keys differ from its columns' keys, or values
    that leave a column out, take that slower way.
    """
    mapper, columns, primary_key = _shape(cls)
    if columns is None or values.keys() != columns:
        obj = cls(**values, **related)
        make_transient_to_detached(obj)
        return obj
    obj = mapper.class_manager.new_instance()
    obj.__dict__.update(values)
    instance_state(obj).key = mapper.identity_key_from_primary_key([values[key] for key in primary_key])
    for key, value in related.items():
        set_committed_value(obj, key, value)
    return obj
