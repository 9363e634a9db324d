"""DATABASE_READ_URL: an export's cells are read on the replica's engine, in one snapshot, with the same totals."""
from datetime import timedelta

import pytest
from sqlalchemy import event

from app.replica import read_session, replica_engine
from app.extensions import db
from tests.district.conftest import recount, today, totals
from tests.district.test_exports import _export, _rows

pytestmark = pytest.mark.committing


@pytest.fixture
def replica(app, monkeypatch):
    """The test database again, through an engine of its own: what a streaming replica serves."""
    monkeypatch.setitem(app.config, "DATABASE_READ_URL", app.config["SQLALCHEMY_DATABASE_URI"])
    statements: list[str] = []
    with app.app_context():
        engine = replica_engine()
    event.listen(engine, "before_cursor_execute", lambda c, cur, statement, *rest: statements.append(statement))
    yield statements
    app.extensions.pop("replica_engine").dispose()


def test_an_export_reads_its_cells_on_the_replica_and_its_totals_are_unchanged(client, admin, households, approve,
                                                                               replica):
    people = households(5)
    for index, person in enumerate(people):
        approve(person, 2, quantity=f"{index + 1}.5")
    expected = totals(recount(today() - timedelta(days=40), today(), ["month"]).values())

    view, data = _export(client, admin, ["community", "month"])

    assert totals(_rows("csv", data, ["community", "month"])) == expected
    assert view["metadata"]["totals"]["households"] == 5
    assert any("district_daily_rollups" in statement for statement in replica)
    assert not any(statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")) for statement in replica)


def test_without_a_replica_reads_use_the_primary_session(app):
    with app.app_context(), read_session() as session:
        assert session is db.session
