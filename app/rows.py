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
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from .extensions import core, db

@functools.cache
def _insert_of(cls) -> tuple:
    """The class's INSERT, its column keys, and the keys of columns with a default."""
    table = cls.__table__
    return (insert(table), [column.key for column in table.columns],
            [column.key for column in table.columns if column.default is not None])


def write_new(obj) -> None:
    """INSERT a new (transient) object's row now and attach it, loaded; an object already in a
    session is left to the unit of work. Does not commit."""
    if not inspect(obj).transient:
        return
    statement, keys, defaulted = _insert_of(type(obj))
    values = {key: getattr(obj, key) for key in keys}
    missing = [key for key in defaulted if values[key] is None]
    if missing:  # a column default the ORM would have applied: the callers set every such column
        raise ValueError(f"{type(obj).__name__} written without {', '.join(missing)}")
    core(statement, values)
    make_transient_to_detached(obj)
    for key, value in values.items():
        if key not in obj.__dict__:  # never set: written as NULL, nothing to read back
            set_committed_value(obj, key, value)
    db.session.add(obj)


def loaded(cls, values: dict, *, refresh: bool = True):
    """The session's object of a row read by a Core statement (every column in `values`), as if the
    ORM had loaded it: no query, no history. One the session already holds gets these values
    (`populate_existing`), unless `refresh` is False (the row cannot have changed)."""
    session = db.session()
    held = session.identity_map.get(identity_key(cls, values["id"]))
    if held is None:
        obj = detached(cls, values)
        session.add(obj)
        return obj
    if refresh:
        for key, value in values.items():
            set_committed_value(held, key, value)
    return held



def detached(cls, values: dict, **related):
    """An object of `cls` for a row that exists (every column in `values`, `related` objects set),
    as if loaded and then detached: no history, nothing to write, in no session."""
    obj = cls(**values, **related)
    make_transient_to_detached(obj)
    return obj
