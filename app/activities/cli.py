"""Command line for factor sets."""
import sys

import click
from flask.cli import AppGroup

from ..transaction import unit_of_work
from . import factors

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
    data, problems = factors.parse_factor_csv(text)
    if problems:
        for problem in problems:
            click.echo(f"line {problem.line}: {problem.field}: {problem.message}", err=True)
        click.echo(f"{path}: {len(problems)} problem(s); nothing loaded", err=True)
        sys.exit(1)
    with unit_of_work(f"{path}: {{}}; nothing loaded"):
        factor_set = factors.create_factor_set(data)
    click.echo(f"factor set {factor_set.code} (from {factor_set.effective_from}): "
               f"{len(factor_set.rows)} rows loaded as a draft; publish it with `flask factors publish "
               f"{factor_set.code}`")


@factors_cli.command("publish")
@click.argument("code")
def publish_factors(code):
    """Publish a draft factor set; it is immutable from then on."""
    with unit_of_work(f"{code}: {{}}"):
        factor_set = factors.publish_factor_set(code)
    click.echo(f"factor set {factor_set.code} published, in force from {factor_set.effective_from}")


@factors_cli.command("list")
def list_factors():
    """Every factor set with its status and dates."""
    for item in factors.list_factor_sets():
        until = item.effective_until or "-"
        click.echo(f"{item.code:<16} {item.status:<10} {item.effective_from} .. {until}  {item.row_count} rows")
