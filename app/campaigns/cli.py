"""Command line for campaigns: end those whose end time has passed."""
import click
from flask.cli import AppGroup

from ..transaction import unit_of_work
from . import service

campaigns_cli = AppGroup("campaigns", help="Campaigns.")


@campaigns_cli.command("close-ended")
def close_ended():
    """End every active campaign whose end time has passed and return its unspent budget (run every few
    minutes); safe to run twice or alongside the app."""
    closed = 0
    for campaign_id in service.close_ended():
        with unit_of_work(f"campaign {campaign_id}: {{}}"):
            closed += service.close_one(campaign_id)
    click.echo(f"closed {closed} campaign(s)")
