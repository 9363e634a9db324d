"""The migrations build exactly the models' schema."""
import flask_migrate
import pytest
from flask import current_app
from sqlalchemy import inspect

from app.extensions import db


@pytest.mark.committing
def test_migrations_match_the_models():
    """`flask db check`: autogenerate finds nothing to add, drop or alter."""
    flask_migrate.check()


@pytest.mark.committing
def test_migrated_schema_has_exactly_the_models_tables():
    tables = set(inspect(db.engine).get_table_names()) - {"alembic_version"}

    assert sorted(tables) == sorted(db.metadata.tables)


@pytest.mark.committing
def test_migrations_are_at_a_single_head():
    from alembic.script import ScriptDirectory

    config = current_app.extensions["migrate"].migrate.get_config()
    heads = ScriptDirectory.from_config(config).get_heads()

    assert len(heads) == 1
