"""Command line: register integrations, list them, run an operator CSV import."""
from pathlib import Path

import click
from flask.cli import AppGroup
from marshmallow import ValidationError
from sqlalchemy import select

from ..extensions import db
from ..transaction import unit_of_work
from .models import KINDS, MAX_ROTATION_OVERLAP_SECONDS, ROTATION_OVERLAP_SECONDS, SOURCES, Integration
from .schemas import IntegrationIn

integrations_cli = AppGroup("integrations", help="Device and operator integrations.")


@integrations_cli.command("create")
@click.option("--name", required=True)
@click.option("--kind", required=True, type=click.Choice(KINDS))
@click.option("--source", type=click.Choice(SOURCES), help="device or import (default: from the kind)")
def create(name, kind, source):
    """Register an integration and print its key id and secret (shown only now)."""
    from . import service

    try:
        data = IntegrationIn().load({"name": name, "kind": kind, **({"source": source} if source else {})})
    except ValidationError as exc:
        raise click.ClickException(f"invalid: {exc.messages}")
    with unit_of_work():
        integration, secret = service.create_integration(**data)
    click.echo(f"integration {integration.name} ({integration.kind}, source {integration.source})")
    click.echo(f"X-Integration-Id: {integration.id}")
    click.echo(f"secret:           {secret}")
    click.echo("Store the secret now: it is not shown again.")


@integrations_cli.command("list")
def list_all():
    """List integrations (never their secrets)."""
    for integration in db.session.scalars(select(Integration).order_by(Integration.created_at)):
        state = "active" if integration.active else "inactive"
        click.echo(f"{integration.id}  {integration.kind:16}  {integration.source:6}  {state:8}  {integration.name}")


@integrations_cli.command("deactivate")
@click.argument("integration_id")
def deactivate(integration_id):
    """Deactivate an integration: its signed requests are refused from now on."""
    from . import service

    with unit_of_work():
        service.deactivate_integration(integration_id)
    click.echo(f"integration {integration_id} deactivated")


@integrations_cli.command("rotate-secret")
@click.argument("integration_id")
@click.option("--overlap-seconds", type=click.IntRange(0, MAX_ROTATION_OVERLAP_SECONDS),
              default=ROTATION_OVERLAP_SECONDS, show_default=True,
              help="How long the replaced secret keeps verifying signatures (at most 7 days).")
def rotate_secret(integration_id, overlap_seconds):
    """Give an integration a new secret and print it (shown only now); the old one verifies for the overlap."""
    from datetime import timedelta

    from . import service

    with unit_of_work():
        integration, secret = service.rotate_secret(integration_id, timedelta(seconds=overlap_seconds))
    click.echo(f"X-Integration-Id: {integration.id}")
    click.echo(f"secret:           {secret}")
    until = integration.previous_secret_expires_at
    click.echo(f"The previous secret verifies until {until.isoformat()}." if until else
               "The previous secret no longer verifies.")
    click.echo("Store the secret now: it is not shown again.")


@integrations_cli.command("import")
@click.argument("integration_id")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_csv(integration_id, csv_file):
    """Queue an operator's CSV file for import (runs here when no Redis is configured)."""
    from .. import jobs
    from . import service

    with unit_of_work("{}"):
        imp = service.create_import(integration_id, csv_file.read_bytes(), "text/csv")
    jobs.dispatch()
    done = service.get_import(imp.id)
    click.echo(f"import {imp.id}: {done.status}, {done.total_rows} rows, {done.created_count} created, "
               f"{done.duplicate_count} duplicates, {done.rejected_count} rejected")
    for error in done.row_errors:
        click.echo(f"  line {error.line} {error.external_id or ''}: {error.errors}", err=True)
