"""Command line for factor sets, and the demo factor table and actions."""
import sys
from datetime import timedelta
from decimal import Decimal

import click
from flask.cli import AppGroup
from sqlalchemy import func, select

from ..cli import demo_seeder, unit_of_work
from ..columns import utcnow
from ..extensions import db
from . import service
from .models import Action

factors_cli = AppGroup("factors", help="Factor sets (methodology versions).")


@factors_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def import_factors(path):
    """Load FILE.csv as a draft factor set; any bad row loads nothing and exits 1."""
    try:
        with open(path, encoding="utf-8-sig") as handle:
            text = handle.read()
    except UnicodeDecodeError:
        click.echo(f"{path}: not UTF-8 text; nothing loaded", err=True)
        sys.exit(1)
    data, problems = service.parse_factor_csv(text)
    if problems:
        for problem in problems:
            click.echo(f"line {problem.line}: {problem.field}: {problem.message}", err=True)
        click.echo(f"{path}: {len(problems)} problem(s); nothing loaded", err=True)
        sys.exit(1)
    with unit_of_work(f"{path}: {{}}; nothing loaded"):
        factor_set = service.create_factor_set(data)
    click.echo(f"factor set {factor_set.code} (from {factor_set.effective_from}): "
               f"{len(factor_set.rows)} rows loaded as a draft; publish it with `flask factors publish "
               f"{factor_set.code}`")


@factors_cli.command("publish")
@click.argument("code")
def publish_factors(code):
    """Publish a draft factor set; it is immutable from then on."""
    with unit_of_work(f"{code}: {{}}"):
        factor_set = service.publish_factor_set(code)
    click.echo(f"factor set {factor_set.code} published, in force from {factor_set.effective_from}")


@factors_cli.command("list")
def list_factors():
    """Every factor set with its status and dates."""
    for item in service.list_factor_sets():
        until = item["effective_until"] or "-"
        click.echo(f"{item['code']:<16} {item['status']:<10} {item['effective_from']} .. {until}  "
                   f"{item['row_count']} rows")


@demo_seeder("factors and demo actions")
def seed_factors_and_actions(context) -> str:
    """Publish factors.csv; give each demo household a few actions (only when it has none)."""
    factor_set = service.load_project_factors()
    db.session.flush()
    staff = context["staff"]("13800000001", "社区工作者（演示）", "community_staff",
                             community_ids=[context["community"].id, context["community2"].id])
    created = 0
    now = utcnow()
    for resident in context["residents"]:
        if resident.household.community_id not in (context["community"].id, context["community2"].id):
            continue
        has_actions = db.session.scalar(
            select(func.count()).select_from(Action).where(Action.household_id == resident.household_id))
        if has_actions:
            continue
        service.record_action(household_id=resident.household_id, resident_id=resident.id,
                              action_type="walking", variant=None, quantity=Decimal("3.2"), unit="km",
                              occurred_at=now - timedelta(hours=5), source="self_reported", actor_id=resident.id,
                              note="步行上班")
        service.record_action(household_id=resident.household_id, resident_id=resident.id,
                              action_type="recycling", variant="paper", quantity=Decimal("2.5"), unit="kg",
                              occurred_at=now - timedelta(hours=3), source="self_reported", actor_id=resident.id,
                              evidence="photo: 旧报纸一捆")
        service.record_action(household_id=resident.household_id, resident_id=resident.id,
                              action_type="recycling", variant="pet", quantity=Decimal("1.2"), unit="kg",
                              occurred_at=now - timedelta(days=1), source="staff", actor_id=staff.id,
                              note="回收站称重")
        created += 3
    return f"factor set {factor_set.code} in force from {factor_set.effective_from}; {created} demo actions"
