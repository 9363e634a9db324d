"""Statements whose spelling differs between PostgreSQL and SQLite."""
from sqlalchemy.dialects import postgresql, sqlite

from .extensions import db


def dialect_insert(table):
    """An INSERT that supports `on_conflict_do_nothing/do_update` on the session's database."""
    return dialect_insert_for(db.session.get_bind().dialect.name, table)


def dialect_insert_for(name: str, table):
    """The same for a dialect by name (for statements built once per dialect and kept)."""
    return (postgresql.insert if name == "postgresql" else sqlite.insert)(table)


def insert_ignoring_conflicts(table):
    """`INSERT … ON CONFLICT DO NOTHING`; add `.returning(...)` to learn whether the row was new

    (psycopg reports no rowcount for it).
    """
    return dialect_insert(table).on_conflict_do_nothing()
