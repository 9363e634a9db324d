"""One owner per unit of work: every mutating route has exactly one, and keyed requests join it."""
import threading

import pytest
from flask import Flask
from sqlalchemy import func, select

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
