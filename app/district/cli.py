"""Command line for exports and the district rollups."""
import click
from flask.cli import AppGroup

from ..transaction import unit_of_work

exports_cli = AppGroup("exports", help="District exports.")
district_cli = AppGroup("district", help="District rollups.")


@exports_cli.command("sweep")
def sweep_exports():
    """Remove export files older than 30 days (run daily); safe to run twice."""
    from . import exports

    with unit_of_work():
        removed = exports.sweep()
    click.echo(f"removed {removed} expired export file(s)")


@district_cli.command("rebuild-rollups")
def rebuild_rollups():
    """Recompute the daily and household-month rollups from the approved actions."""
    from . import rollups

    with unit_of_work():
        days, months = rollups.rebuild()
    click.echo(f"rollups rebuilt: {days} daily rows, {months} household-month rows")
