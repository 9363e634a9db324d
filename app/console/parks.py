"""Park pages: the offset statement with serial ranges, retiring, and a printable retirement certificate.

A park manager sees only their own park and a district admin any park: `parks.park_for`, the
API's rule, decides (another park is a 404, as in the API).
"""
from flask import g, redirect, render_template, request, url_for

from ..district import parks
from ..district.schemas import InventoryIn, RetirementIn
from ..errors import NotFound
from ..localtime import local_date, today
from ..transaction import transactional
from . import back_to, bp, charts, pages
from .forms import load_form

PARK_ROLES = ("district_admin", "park_manager")

pages.add_nav("console.my_park", "Offset statement", "park_manager")


@bp.get("/park/statement")
@pages.allow("park_manager")
def my_park():
    """A park manager's own park statement."""
    return redirect(url_for("console.park_statement", park_id=g.console_user.park_id))


@bp.get("/parks/<park_id>/statement")
@pages.allow(*PARK_ROLES)
def park_statement(park_id):
    """Received, retired and available grams with serial ranges per batch; retirements; the retire form."""
    statement = parks.statement(parks.park_for(g.console_user, park_id))
    return render_template("console/park/statement.html", statement=statement, format_grams=charts.format_grams,
                           this_year=today().year)


@bp.post("/parks/<park_id>/retirements")
@pages.allow(*PARK_ROLES)
@transactional
def retire(park_id):
    """Retire grams from the park's lowest available serials (final), then show the certificate."""
    park = parks.park_for(g.console_user, park_id)
    data = load_form(RetirementIn(), {"quantity_g": "int", "purpose": "text", "beneficiary": "text",
                                      "inventory_year": "int"})
    retirement = parks.retire(park, data, g.console_user.id)
    return back_to("console.retirement_certificate", park_id=park.id, retirement_id=retirement.id)


@bp.get("/parks/<park_id>/retirements/<retirement_id>/certificate")
@pages.allow(*PARK_ROLES)
def retirement_certificate(park_id, retirement_id):
    """A print-styled certificate of one retirement: amount, purpose, beneficiary and serial ranges."""
    statement = parks.statement(parks.park_for(g.console_user, park_id))
    retirement = next((r for r in statement["retirements"] if r["id"] == retirement_id), None)
    if retirement is None:
        raise NotFound("No such retirement")
    return render_template("console/park/certificate.html", statement=statement, retirement=retirement,
                           retired_on=local_date(retirement["created_at"]), format_grams=charts.format_grams)


@bp.post("/parks/<park_id>/inventory")
@pages.allow(*PARK_ROLES)
@transactional
def set_inventory(park_id):
    """Record the park's gross emissions of a year (replacing an earlier figure); the statement shows net."""
    park = parks.park_for(g.console_user, park_id)
    year = parks.inventory_year(request.form.get("year", ""))  # the API's rule for the year in its path
    data = load_form(InventoryIn(), {"emissions_g": "int"})
    parks.set_inventory(park, year, data["emissions_g"], g.console_user.id)
    return back_to("console.park_statement", park_id=park.id)
