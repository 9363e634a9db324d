"""Command line: admins, demo data, ledger verification, the job worker."""
import sys

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from .extensions import db
from .transaction import transaction, unit_of_work

users_cli = AppGroup("users", help="User accounts.")
ledger_cli = AppGroup("ledger", help="The points ledger.")
jobs_cli = AppGroup("jobs", help="Background jobs.")
points_cli = AppGroup("points", help="Household points: expiry.")
keys_cli = AppGroup("keys", help="Data-encryption keys (DATA_KEYS).")

DEMO_PASSWORD = "demo-pass-2026"
DEMO_SEEDERS = "demo_seeders"


def register_demo_seeders(app, seeders: list) -> None:
    """(label, function) pairs that seed-demo calls in this order; each must be safe to run twice."""
    app.extensions.setdefault(DEMO_SEEDERS, []).extend(seeders)


@users_cli.command("create-admin")
@click.option("--phone", required=True)
@click.option("--password", required=True)
@click.option("--display-name", default="District admin")
def create_admin(phone, password, display_name):
    """Create a district admin."""
    from marshmallow import ValidationError

    from .accounts import service
    from .accounts.schemas import StaffIn

    try:
        data = StaffIn().load({"phone": phone, "password": password, "display_name": display_name,
                               "role": "district_admin"})
    except ValidationError as exc:
        raise click.ClickException(f"invalid: {exc.messages}")
    with unit_of_work():
        user = service.create_staff(data)
    click.echo(f"district admin {service.mask_phone(user.phone)} created (id {user.id})")


@click.command("seed-demo")
def seed_demo():
    """Load geography and demo data; safe to run twice."""
    from .accounts import service
    from .accounts.models import User

    with transaction():
        created = service.load_geography()
        demo = service.add_community("方松街道", "松江示范社区（演示）", is_demo=True)
        demo2 = service.add_community("中山街道", "中山示范社区（演示）", is_demo=True)
    lines = [f"geography: {created} new streets/communities; demo communities: {demo.name}, {demo2.name}"]

    def staff(phone, name, role, **scope):
        user = db.session.scalar(select(User).where(User.phone == phone))
        if user is None:
            user = service.create_staff({"phone": phone, "password": DEMO_PASSWORD, "display_name": name,
                                         "role": role, **scope})
        return user

    residents = []
    with transaction():
        staff("13800000000", "区管理员（演示）", "district_admin")
        staff("13800000001", "社区工作者（演示）", "community_staff", community_ids=[demo.id, demo2.id])
        for phone, name in (("13900000001", "王家（演示）"), ("13900000002", "李家（演示）")):
            user = db.session.scalar(select(User).where(User.phone == phone))
            if user is None:
                user, _ = service.register({"phone": phone, "password": DEMO_PASSWORD, "display_name": name,
                                            "community_id": demo.id})
            residents.append(user)
    context = {"community": demo, "community2": demo2, "residents": residents, "staff": staff}
    for label, fn in current_app.extensions.get(DEMO_SEEDERS, []):
        with transaction():
            note = fn(context)
        if note:
            lines.append(f"{label}: {note}")
    lines += [
        "demo accounts (password for all: " + DEMO_PASSWORD + "):",
        "  district admin   13800000000",
        "  community staff  13800000001",
        "  residents        13900000001, 13900000002 (household cards "
        + ", ".join(r.household.card_number for r in residents) + ")",
    ]
    lines += [f"  {extra}" for extra in context.get("extra_accounts", [])]
    click.echo("\n".join(lines))


@ledger_cli.command("verify")
def verify_ledger():
    """Recompute every hash chain and balance, and the campaign holdings; exit 1 naming what differs."""
    from .campaigns.service import holding_problems
    from .ledger import service

    problems = service.verify() + holding_problems()
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        click.echo(f"ledger verify: {len(problems)} problem(s)", err=True)
        sys.exit(1)
    click.echo("ledger verify: every chain, balance, transfer and campaign holding checks out")


@jobs_cli.command("requeue")
@click.option("--older-than", type=int, default=None,
              help="Seconds a queued job must have waited (default JOB_REQUEUE_AFTER_SECONDS).")
def requeue(older_than):
    """Push again jobs whose push was lost or whose worker died."""
    from datetime import timedelta

    from . import jobs

    age = None if older_than is None else timedelta(seconds=older_than)
    click.echo(f"requeued {jobs.requeue_stale(age)} job(s)")


@points_cli.command("expire")
def expire_points():
    """Expire the point lots past their expiry date (run daily); safe to run twice."""
    from .ledger.expiry import expire_points as expire

    click.echo(f"expired {expire()} lot(s)")


@keys_cli.command("rotate")
def rotate_keys():
    """Re-encrypt every stored secret under the first key of DATA_KEYS; then the others can go."""
    from . import keyring
    from .integrations.service import reencrypt_secrets
    from .rewards.service import reencrypt_codes

    counts = {}
    for name, reencrypt in (("integration secrets", reencrypt_secrets), ("redemption codes", reencrypt_codes)):
        counts[name] = 0
        while True:  # a chunk per unit of work: no lock is held for long, an interrupted run just resumes
            with unit_of_work("keys rotate: {}; the chunks before were committed, run it again"):
                done = reencrypt()
            if not done:
                break
            counts[name] += done
    active = keyring.keyring().active_id
    click.echo(f"re-encrypted under {active}: " + ", ".join(f"{n} {name}" for name, n in counts.items()))
    click.echo(f"nothing stored is under another key now: keys other than {active} may leave DATA_KEYS")


@click.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
def worker(burst):
    """Run an RQ worker for the background jobs; it also pushes again jobs that were lost or abandoned."""
    from .jobs import run_worker

    if not current_app.config.get("REDIS_URL"):
        raise click.ClickException("REDIS_URL is not set: jobs run inline, no worker is needed")
    run_worker(burst=burst)


COMMANDS = (users_cli, ledger_cli, jobs_cli, points_cli, keys_cli, seed_demo, worker)
