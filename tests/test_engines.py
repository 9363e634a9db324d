"""How the app's engines open transactions: SQLite's writers take the write lock up front, a
read-only SQLite connection takes none, PostgreSQL's driver opens its own with the first statement."""
import pytest
from sqlalchemy import event, text

from app.extensions import db

pytestmark = pytest.mark.committing  # the app's own engine, not the test's connection


def _first_statements(engine, **options) -> list[str]:
    seen = []
    record = lambda conn, cursor, statement, *rest: seen.append(" ".join(statement.split()).upper())  # noqa: E731
    event.listen(engine, "before_cursor_execute", record)
    try:
        with engine.connect() as conn:
            if options:
                conn = conn.execution_options(**options)
            conn.execute(text("SELECT 1"))
            conn.rollback()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


def test_each_transaction_begins_as_the_database_needs(app, is_postgres):
    writer = _first_statements(db.engine)
    reader = _first_statements(db.engine, read_only=True)

    if is_postgres:
        assert writer == reader == ["SELECT 1"]
    else:
        assert writer == ["BEGIN IMMEDIATE", "SELECT 1"]
        assert reader == ["BEGIN", "SELECT 1"]
