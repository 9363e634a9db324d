"""Pre-built Core statements run on the driver's cursor, without SQLAlchemy's execution layer.

A hot path runs the same few statement objects over and over (built once, at import or by a cached
function). SQLAlchemy looks each one up in its compiled cache, builds an execution context and a
result around the driver's cursor on every run: about 190,000 CPU instructions a statement here,
against about 110,000 for psycopg's own work (valgrind, 500 runs of one UPDATE … RETURNING).
`execute` compiles such a statement once per process and parameter set, and then binds the
parameters with SQLAlchemy's own processors, runs it on the session connection's psycopg cursor and
hands back a small result. The SQL sent, the parameters bound, the transaction and the errors raised
(SQLAlchemy's, wrapped by the connection as always, a lost connection invalidated) are the ones
Core gives.

Anything this does not cover returns None, and the caller runs the statement through Core:
SQLite; a connection or engine with event listeners (the tests that count or break statements see
every one); a statement seen only once so far (built for one call); Python-side column defaults,
expanding IN parameters, execution options, textual SQL, a RETURNING executemany; result columns
that cannot be named as attributes.
"""
import threading
from collections import namedtuple

from sqlalchemy.exc import MultipleResultsFound, NoResultFound, ResourceClosedError

PLANS_MAX = 2_000  # (statement, parameter names) plans kept per process; all dropped when full
_COREONLY = object()  # a statement this module leaves to Core
_plans: dict = {}  # (id(statement), parameter names, many) → (statement, plan or _COREONLY or None)
_lock = threading.Lock()


class _Plan:
    __slots__ = ("sql", "compiled", "bind_processors", "escaped", "returns_rows", "row", "result_processors")

    def __init__(self, compiled, returns_rows: bool, row):
        self.sql, self.compiled = compiled.string, compiled
        self.bind_processors = compiled._bind_processors
        self.escaped = compiled.escaped_bind_names
        self.returns_rows, self.row = returns_rows, row
        self.result_processors = None  # known once the first result's column types are


def execute(connection, statement, params):
    """Run `statement` with `params` (a dict, None, or a list of dicts for executemany) on the
    connection's driver cursor; None when Core must run it."""
    if connection.dialect.driver != "psycopg" or _watched(connection):
        return None
    many = isinstance(params, list)
    if many and not params:
        return None
    names = tuple(params[0]) if many else tuple(params) if params else ()
    key = (id(statement), names, many)
    held = _plans.get(key)
    if held is None or held[0] is not statement:
        with _lock:
            if len(_plans) >= PLANS_MAX:
                _plans.clear()
            _plans[key] = (statement, None)  # seen once: Core runs it (and caches its compilation)
        return None
    plan = held[1]
    if plan is None:
        plan = _plan(connection.dialect, statement, names, many)
        with _lock:
            _plans[key] = (statement, plan)
    if plan is _COREONLY:
        return None
    if many:
        bound = [_bind(plan, one) for one in params]
    else:
        bound = _bind(plan, params)
    cursor = None
    try:
        cursor = connection.connection.cursor()
        if many and len(bound) > 1:
            cursor.executemany(plan.sql, bound)
        elif many:  # one row: psycopg's executemany would set up a pipeline for it
            cursor.execute(plan.sql, bound[0])
        else:
            cursor.execute(plan.sql, bound)
        result = Result(cursor, plan)
    except BaseException as error:  # the connection wraps it (and invalidates a lost one), as Core does
        connection._handle_dbapi_exception(error, plan.sql, bound, cursor, None)
    cursor.close()
    return result


def _watched(connection) -> bool:
    """Whether anything listens to statements run on this connection (the app itself only listens
    to "begin" and "connect")."""
    if not (connection._has_events or connection.engine._has_events):
        return False
    events = connection.dispatch
    return bool(events.before_execute or events.after_execute or events.before_cursor_execute
                or events.after_cursor_execute or connection.dialect.dispatch.handle_error)


def _plan(dialect, statement, names: tuple, many: bool):
    if statement._execution_options or not getattr(statement, "is_dml", False) and not getattr(
            statement, "is_select", False):
        return _COREONLY
    compiled = statement.compile(dialect=dialect, column_keys=list(names), for_executemany=many)
    returns_rows = bool(compiled._result_columns)
    if (compiled.insert_prefetch or compiled.update_prefetch or compiled.literal_execute_params
            or compiled.post_compile_params or compiled.positional or compiled.schema_translate_map
            or compiled._textual_ordered_columns or compiled._ad_hoc_textual or compiled.isplaintext
            or (many and (returns_rows or compiled.isinsert and dialect.use_insertmanyvalues_wo_returning))):
        return _COREONLY
    row = None
    if returns_rows:
        try:
            row = _row_class(tuple(entry.keyname for entry in compiled._result_columns))
        except ValueError:  # a name namedtuple cannot take
            return _COREONLY
    return _Plan(compiled, returns_rows, row)


def _bind(plan: _Plan, params) -> dict:
    values = plan.compiled.construct_params(params, escape_names=False)
    processors, escaped = plan.bind_processors, plan.escaped
    bound = {}
    for name, value in values.items():
        processor = processors.get(name)
        bound[escaped.get(name, name) if escaped else name] = value if processor is None else processor(value)
    return bound


def _row_class(keys: tuple):
    base = namedtuple("Row", keys)

    class Row(base):
        __slots__ = ()

        @property
        def _mapping(self) -> dict:
            return dict(zip(self._fields, self))

    return Row


class Result:
    """What the hot paths use of a Core result: rows (by position or key), scalars, rowcount."""

    __slots__ = ("rowcount", "_rows")

    def __init__(self, cursor, plan: _Plan):
        self.rowcount = cursor.rowcount
        self._rows = None
        if plan.returns_rows:
            raw = cursor.fetchall()
            processors = plan.result_processors
            if processors is None:
                processors = plan.result_processors = _result_processors(plan, cursor)
            if any(processors):
                raw = [tuple(value if p is None or value is None else p(value)
                             for p, value in zip(processors, one)) for one in raw]
            self._rows = [plan.row._make(one) for one in raw]

    def _all(self) -> list:
        if self._rows is None:
            raise ResourceClosedError("This result object does not return rows.")
        return self._rows

    def __iter__(self):
        return iter(self._all())

    def all(self) -> list:
        return list(self._all())

    def first(self):
        rows = self._all()
        return rows[0] if rows else None

    def one(self):
        rows = self._all()
        if not rows:
            raise NoResultFound("No row was found when one was required")
        if len(rows) > 1:
            raise MultipleResultsFound("Multiple rows were found when exactly one was required")
        return rows[0]

    def one_or_none(self):
        rows = self._all()
        if len(rows) > 1:
            raise MultipleResultsFound("Multiple rows were found when one or none was required")
        return rows[0] if rows else None

    def scalar(self):
        row = self.first()
        return None if row is None else row[0]

    def scalar_one(self):
        return self.one()[0]

    def scalars(self) -> "Scalars":
        return Scalars([row[0] for row in self._all()])

    def scalar_one_or_none(self):
        row = self.one_or_none()
        return None if row is None else row[0]

    def mappings(self) -> list[dict]:
        return [row._mapping for row in self._all()]

    fetchall = all


class Scalars(list):
    """The first column of each row."""

    def all(self) -> list:
        return list(self)

    def first(self):
        return self[0] if self else None

    def one(self):
        if len(self) != 1:
            raise (NoResultFound if not self else MultipleResultsFound)("Exactly one row was required")
        return self[0]


def _result_processors(plan: _Plan, cursor) -> list:
    dialect = plan.compiled.dialect
    return [entry.type._cached_result_processor(dialect, column.type_code)
            for entry, column in zip(plan.compiled._result_columns, cursor.description)]

