"""One owner per unit of work: every mutating route has exactly one, and keyed requests join it."""
import threading

import pytest
from flask import Flask
from sqlalchemy import func, inspect, select, update

from app.accounts.models import User
from app.activities.models import Action
from app.extensions import db
from app.transaction import CommitOutsideUnitOfWork, NestedUnitOfWork, transaction
from tests.activities.conftest import action_body

API = "/api/v1"
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


def test_every_mutating_route_runs_inside_exactly_one_transaction_owner(app: Flask):
    owners = {}
    for rule in app.url_map.iter_rules():
        if rule.methods & MUTATING:
            owners[f"{sorted(rule.methods & MUTATING)} {rule.rule}"] = getattr(
                app.view_functions[rule.endpoint], "transaction_owners", 0)

    assert owners and {route: count for route, count in owners.items() if count != 1} == {}


def test_a_commit_during_a_request_outside_the_owner_is_refused(app):
    with app.test_request_context("/"):
        with pytest.raises(CommitOutsideUnitOfWork):
            db.session.commit()
        db.session.rollback()


def test_a_unit_of_work_inside_another_is_refused():
    with pytest.raises(NestedUnitOfWork):
        with transaction():
            with transaction():
                pass


@pytest.mark.committing
def test_concurrent_requests_with_one_key_wait_and_replay_the_first_reply(app, factor_set, resident):
    db.session.commit()
    body = action_body()
    headers = {**resident.headers, "Idempotency-Key": "same-key-everywhere"}
    barrier = threading.Barrier(8)
    replies = [None] * 8

    def post(index):
        client = app.test_client()
        barrier.wait()
        reply = client.post(f"{API}/actions", json=body, headers=headers)
        replies[index] = (reply.status_code, reply.headers.get("Idempotent-Replayed"), reply.get_json())

    threads = [threading.Thread(target=post, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert [status for status, _, _ in replies] == [201] * 8
    assert sorted(flag or "" for _, flag, _ in replies) == [""] + ["true"] * 7
    assert len({reply["id"] for _, _, reply in replies}) == 1
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Action)) == 1


@pytest.mark.committing
def test_a_request_commits_without_expiring_and_the_next_transaction_reads_afresh(app, resident):
    with app.test_request_context("/"):
        with transaction():
            user = db.session.get(User, resident.id)
            user.display_name = "written by the request"
        # The request's reply is built by now: nothing of the session is read again for it.
        assert user.display_name == "written by the request"
        assert not inspect(user).expired_attributes
        with db.engine.begin() as other:  # another process changes the row after the commit
            other.execute(update(User).where(User.id == user.id).values(display_name="changed elsewhere"))

        # The session begins again (a test holding the app context, say): its objects are read afresh.
        db.session.scalar(select(func.count()).select_from(User))
        assert user.display_name == "changed elsewhere"


@pytest.mark.committing
def test_outside_a_request_a_commit_expires_the_sessions_objects(app, resident):
    with transaction():
        user = db.session.get(User, resident.id)
        user.display_name = "written by a job"

    assert "display_name" in inspect(user).expired_attributes
