"""Statements whose spelling differs between PostgreSQL and SQLite."""
import functools
from datetime import date, datetime, timezone
from decimal import Decimal

import orjson
from sqlalchemy import Text, any_, bindparam, cast, column, func, literal, select, true, update
from sqlalchemy.dialects import postgresql, sqlite

from .extensions import core, db, run


def dialect_name() -> str:
    """The session's database: "postgresql" or "sqlite" (statements built once per dialect take it)."""
    return db.session.get_bind().dialect.name


def dialect_insert(table):
    """An INSERT that supports `on_conflict_do_nothing/do_update` on the session's database."""
    return dialect_insert_for(dialect_name(), table)


def dialect_insert_for(name: str, table):
    """The same for a dialect by name (for statements built once per dialect and kept)."""
    return (postgresql.insert if name == "postgresql" else sqlite.insert)(table)


def insert_ignoring_conflicts(table):
    """`INSERT … ON CONFLICT DO NOTHING`; add `.returning(...)` to learn whether the row was new

    (psycopg reports no rowcount for it).
    """
    return dialect_insert(table).on_conflict_do_nothing()


# ---------------------------------------------------------------- adding into kept totals


@functools.cache
def adding_statement(dialect: str, table, keys: tuple, sums: tuple, prefix: str | None = None):
    """INSERT one row … ON CONFLICT (keys) DO UPDATE adding its `sums` to the stored row's; parameters
    named `prefix` + column (default: the columns' names). Built once per dialect and table."""
    insert = dialect_insert_for(dialect, table)
    if prefix is not None:
        insert = insert.values({c.key: bindparam(prefix + c.key, type_=c.type) for c in table.columns})
    return _adding(insert, table, keys, sums)


def _adding(insert, table, keys: tuple, sums: tuple):
    """`insert` … ON CONFLICT (keys) DO UPDATE adding its `sums` to the stored row's."""
    return insert.on_conflict_do_update(index_elements=list(keys),
                                        set_={name: table.c[name] + insert.excluded[name] for name in sums})


def add_rows(session, table, keys, sums, rows: list[dict]) -> None:
    """Add `rows` (each with its own `keys`) into a table of totals: each is inserted, or its `sums`
    are added to the row with the same `keys`, in the order given (sort them by key so that writers
    lock rows in one order).

    PostgreSQL takes many rows in one upsert reading them from a JSON parameter, as `insert_rows`
    does (a batch's 500 month rows as an executemany cost ≈ 10 ms of the driver's Python); one row,
    and SQLite, take the one-row upsert (an executemany for several), compiled once per process.
    """
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if len(rows) > 1 and dialect == "postgresql":
        statement = _adding_rows_statement(table, tuple(keys), tuple(sums), tuple(rows[0]))
        run(session.connection(), statement, {"rows": _json_rows(rows)})
        return
    statement = adding_statement(dialect, table, tuple(keys), tuple(sums))
    run(session.connection(), statement, rows if len(rows) > 1 else rows[0])  # Core: no Session overhead


@functools.cache
def _adding_rows_statement(table, keys: tuple, sums: tuple, names: tuple):
    """PostgreSQL: INSERT the rows of a JSON parameter … ON CONFLICT (keys) DO UPDATE adding their sums."""
    return _adding(_json_insert(table, names), table, keys, sums)


# ---------------------------------------------------------------- many rows in one statement


def insert_rows(table, rows: list[dict], *, skip_conflicts_on: list[str] | None = None,
                lock_conflicts_on: list[str] | None = None, returning=None):
    """INSERT every row (dicts with the same keys) in one statement; the result, for `returning` columns.

    PostgreSQL reads the rows from a single JSON parameter (`json_to_recordset`), so the statement
    is the same text for any number of rows: it is built once per table and shape, and run on the
    session's connection (`core`) once the session has flushed, as `Session.execute` would; SQLite
    runs an executemany. Rows are written in the order given. `skip_conflicts_on`: the columns of a
    unique constraint whose repeats are skipped (ON CONFLICT … DO NOTHING); `lock_conflicts_on`:
    whose repeats are left as they are but locked, as an UPDATE locks them (ON CONFLICT … DO UPDATE
    SET key = key), so every row is created or locked.
    """
    if not rows:
        return None
    skip = tuple(skip_conflicts_on or ())
    lock = tuple(lock_conflicts_on or ())
    returned = tuple(returning) if returning is not None else None
    if _is_postgres():
        db.session.flush()
        return core(_insert_from_json(table, tuple(rows[0]), skip, lock, returned), {"rows": _json_rows(rows)})
    return db.session.execute(_conflicts(sqlite.insert(table), skip, lock, returned), rows)


@functools.cache
def _insert_from_json(table, names: tuple, skip: tuple, lock: tuple, returned: tuple | None):
    return _conflicts(_json_insert(table, names), skip, lock, returned)


def _json_insert(table, names: tuple):
    """PostgreSQL: INSERT INTO table (names) SELECT them FROM the rows of one JSON parameter."""
    source = _recordset([(name, table.c[name].type) for name in names])
    return postgresql.insert(table).from_select(list(names), select(*[source.c[name] for name in names]))


def _conflicts(statement, skip: tuple, lock: tuple, returned: tuple | None):
    if skip:
        statement = statement.on_conflict_do_nothing(index_elements=list(skip))
    elif lock:
        statement = statement.on_conflict_do_update(index_elements=list(lock),
                                                    set_={key: statement.excluded[key] for key in lock})
    if returned is not None:
        statement = statement.returning(*returned)
    return statement


def update_rows(table, rows: list[dict], *, match: list[str], guard: dict[str, str] | None = None) -> int:
    """UPDATE one row per dict in one statement; returns how many rows changed.

    Each dict holds the `match` columns (the row's key), `guard` keys (column → key of the value the
    column must still hold, e.g. {"seq": "old_seq"}) and the new values of every other key. On
    PostgreSQL the statement reads the rows from one JSON parameter, built once per table and shape.
    """
    if not rows:
        return 0
    guard_items = tuple((guard or {}).items())
    if _is_postgres():
        db.session.flush()
        statement = _update_from_json(table, tuple(rows[0]), tuple(match), guard_items)
        return core(statement, {"rows": _json_rows(rows)}).rowcount
    keys = list(rows[0])
    params = [{f"p_{key}": row[key] for key in keys} for row in rows]  # a SET clause may not reuse a column's name
    statement = _update(table, keys, match, guard_items, lambda key: bindparam(f"p_{key}"))
    return db.session.execute(statement.execution_options(synchronize_session=False), params).rowcount


@functools.cache
def _update_from_json(table, keys: tuple, match: tuple, guard_items: tuple):
    column_of = {key: table.c[key] for key in keys if key in table.c}
    column_of.update({key: table.c[name] for name, key in guard_items})
    source = _recordset([(key, column_of[key].type) for key in keys])
    return _update(table, keys, match, guard_items, source.c.__getitem__)


def _update(table, keys, match, guard_items: tuple, value):
    guarded = {key for _, key in guard_items}
    sets = [key for key in keys if key not in match and key not in guarded]
    return (
        update(table)
        .where(*[table.c[key] == value(key) for key in match],
               *[table.c[name] == value(key) for name, key in guard_items])
        .values({key: value(key) for key in sets})
    )


def is_in(column, values):
    """`column IN (…)`; on PostgreSQL `column = ANY(:array)`, one parameter however many values (a batch's
    hundreds of ids are neither rendered nor parsed one by one)."""
    values = list(values)
    if _is_postgres():
        return column == any_(bindparam(None, values, type_=postgresql.ARRAY(column.type)))
    return column.in_(values)


def held_values(column, values, *scope) -> set:
    """Which of `values` the column holds in the rows that match `scope` (a batch's already-received ids).

    On PostgreSQL, one probe of the index that leads with `scope`'s columns and `column` for each
    value, whatever the planner's statistics say: with stale ones (a table that grew since its last
    ANALYZE, or autovacuum off) `column = ANY(:array)` was read as a filter over every row in scope,
    136 ms for a batch of 500 over 15,000 earlier rows, against 2 ms here.
    """
    values = list(values)
    if not values:
        return set()
    if not _is_postgres():
        return set(db.session.scalars(select(column).where(*scope, column.in_(values))))
    wanted = (func.unnest(bindparam(None, values, type_=postgresql.ARRAY(column.type)))
              .table_valued("value").render_derived(name="wanted"))
    hit = select(literal(1)).where(*scope, column == wanted.c.value).limit(1).lateral("hit")
    return set(db.session.scalars(select(wanted.c.value).select_from(wanted).join(hit, true())))


def _is_postgres() -> bool:
    return dialect_name() == "postgresql"


def _recordset(columns: list[tuple]):
    """`json_to_recordset(:rows) AS r(name type, …)`: a table of rows read from one JSON parameter."""
    return (
        func.json_to_recordset(cast(bindparam("rows", type_=Text), postgresql.JSON))
        .table_valued(*[column(name, type_) for name, type_ in columns])
        .render_derived("r", with_types=True)
    )


def _json_rows(rows: list[dict]) -> str:
    """The rows (dicts with the same keys) as JSON text for json_to_recordset: naive UTC times (as the
    columns store them), decimals and dates as exact strings. orjson: a batch's thousands of rows are
    written in a few milliseconds, where the standard library took tens."""
    return orjson.dumps(rows, default=_json_value, option=orjson.OPT_PASSTHROUGH_DATETIME).decode()


def _json_value(value):
    if isinstance(value, datetime):
        return _naive_utc(value)
    if isinstance(value, (Decimal, date)):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not a JSON value")


@functools.lru_cache(maxsize=4096)
def _naive_utc(value: datetime) -> str:
    """A batch stamps most of its rows with a few moments: each is converted once."""
    return value.astimezone(timezone.utc).replace(tzinfo=None).isoformat()
