"""The one owner of every unit of work: routes, jobs and commands alike.

`transaction()` begins a unit of work, commits it when the block ends and rolls it
back when anything escapes. Services never commit; they run inside one of these.

A refusal normally leaves nothing behind. Some refusals must still be recorded —
a redemption code is burned by the refusal it met, a reused refresh token revokes
its login — so a service says so explicitly with `refuse_keeping_writes(error)`:
the owner then commits what the unit of work wrote and answers with the refusal.

Imports nothing of the features.
"""
import functools
from contextlib import contextmanager

import click
from typing import NoReturn

from flask import has_request_context
from sqlalchemy import event
from sqlalchemy.orm import Session

from .errors import AppError
from .extensions import db

OWNER = "unit_of_work_owner"
EXPIRE_ON_BEGIN = "expire_on_begin"  # a request committed without expiring its objects


class NestedUnitOfWork(RuntimeError):
    """A unit of work was opened inside another: its commit would end the outer one early."""


class CommitOutsideUnitOfWork(RuntimeError):
    """Something committed during a request without a transaction owner."""


def refuse_keeping_writes(error: AppError) -> NoReturn:
    """Refuse with `error`, but keep what this unit of work wrote (a burned code, a revoked login)."""
    error.keep_writes = True
    raise error


def in_unit_of_work() -> bool:
    return bool(db.session.info.get(OWNER))


@contextmanager
def transaction():
    """Own one unit of work: commit on success, roll back on failure (keeping what a refusal must keep)."""
    session = db.session
    if session.info.get(OWNER):
        raise NestedUnitOfWork("a unit of work is already open; services must not open another")
    session.info[OWNER] = True
    try:
        yield session
        _commit(session())
    except AppError as error:
        if getattr(error, "keep_writes", False):
            _commit(session())
        else:
            session.rollback()
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        session.info.pop(OWNER, None)


def _commit(session: Session) -> None:
    """Commit. A request's unit of work commits without expiring the session's objects: its reply is
    built, and the session ends with the request; should the session begin again (a test that holds
    the app context, say), everything is expired then, before anything is read (`_expire_deferred`).
    Expiring every object at the commit cost ≈ 4 % of a short request's time."""
    if not has_request_context():
        session.commit()
        return
    session.expire_on_commit = False
    try:
        session.commit()
        session.info[EXPIRE_ON_BEGIN] = True
    finally:
        session.expire_on_commit = True


@event.listens_for(Session, "after_transaction_create")
def _expire_deferred(session, transaction):
    if transaction.parent is None and session.info.pop(EXPIRE_ON_BEGIN, False):
        session.expire_all()


@contextmanager
def unit_of_work(message: str = "{}"):
    """A command's unit of work: a refused business rule exits 1 with its reason.

    `message` formats the reason, e.g. "{path}: {{}}; nothing loaded".
    """
    try:
        with transaction():
            yield
    except AppError as error:
        reason = error.detail
        if error.extra.get("errors"):
            reason = f"{reason} {error.extra['errors']}"
        raise click.ClickException(message.format(reason)) from None


def transactional(view):
    """Decorator form of `transaction()` for a route, job or command; the body must not commit."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        with transaction():
            return view(*args, **kwargs)

    mark_owner(wrapper)
    return wrapper


def mark_owner(wrapper) -> None:
    """Count transaction owners on a view (a test checks every mutating route has exactly one)."""
    wrapper.transaction_owners = getattr(wrapper, "transaction_owners", 0) + 1


@event.listens_for(Session, "before_commit")
def _only_owners_commit(session):
    # A request that commits outside its owner would split its unit of work in two.
    if has_request_context() and not session.info.get(OWNER) and session is _request_session():
        raise CommitOutsideUnitOfWork("commit during a request outside transaction()")


def _request_session():
    try:
        return db.session()
    except RuntimeError:  # no app context
        return None
