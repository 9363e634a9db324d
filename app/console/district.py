"""District admin pages: the dashboard, factor sets, exports, reduction batches and park transfers, liability.

Each form is checked by the API's own schema and handled by the API's own service; the page only
renders and redirects (303) back to where the result shows.
"""
from decimal import Decimal

from flask import g, jsonify, render_template, request, url_for
from sqlalchemy import select

from ..accounts.models import Community
from ..activities import factors
from ..activities.schemas import load_strict
from ..district import batches, dashboard, exports, parks
from ..district.routes import export_file
from ..district.schemas import BatchIn, ExportIn, ParkIn, TransferIn
from ..errors import validation_error
from ..extensions import db
from ..localtime import today
from ..paging import decode_cursor, page
from ..transaction import transactional
from . import back_to, bp, charts, pages, text
from .forms import form_payload, load_form

ADMIN = "district_admin"
BATCHES_PER_PAGE = 50

pages.add_nav("console.district_dashboard", "Dashboard", ADMIN)
pages.add_nav("console.factor_sets", "Factor sets", ADMIN)
pages.add_nav("console.district_exports", "Exports", ADMIN)
pages.add_nav("console.reduction_batches", "Reduction batches", ADMIN)
pages.add_nav("console.district_parks", "Parks", ADMIN)
pages.add_nav("console.district_liability", "Points liability", ADMIN)


# ---------------------------------------------------------------- dashboard


@bp.get("/district/dashboard")
@pages.allow(ADMIN)
def district_dashboard():
    """Reductions and participation by month, top communities, points outstanding and redeemed."""
    figures = dashboard.dashboard()
    points = figures["points"]
    empty = text("No data yet")
    svg = {
        "reductions": charts.month_bar_chart(
            text("Reductions by month and action type"), figures["months"],
            [(text(t["action_type"]), t["reduction_g"]) for t in figures["by_action_type"]],
            measure="grams", empty=empty),
        "households": charts.line_chart(
            text("Active households by month"), figures["months"],
            [(text("Households"), figures["households"])], axis_label=text("Households"), empty=empty),
        "communities": charts.bar_chart(
            text("Top communities by reductions"),
            [(c["name"], c["reduction_g"]) for c in figures["top_communities"]], measure="grams", empty=empty),
        "points": _points_chart(points["communities"][:8], empty),
    }
    return render_template("console/district/dashboard.html", figures=figures, points=points, svg=svg,
                           format_grams=charts.format_grams)


def _points_chart(communities, empty):
    return charts.month_bar_chart(
        text("Points outstanding and redeemed by community"), [c["name"] for c in communities],
        [(text("Outstanding"), [c["outstanding_points"] for c in communities]),
         (text("Redeemed"), [c["redeemed_points"] for c in communities])],
        stacked=False, axis_label=text("Points"), empty=empty)


@bp.get("/district/liability")
@pages.allow(ADMIN)
def district_liability():
    """Points outstanding, expiring and redeemed, by community; campaign budgets."""
    points = dashboard.points_by_community()
    return render_template("console/district/liability.html", points=points,
                           chart=_points_chart(points["communities"][:12], text("No data yet")))


# ---------------------------------------------------------------- factor sets


@bp.get("/district/factor-sets")
@pages.allow(ADMIN)
def factor_sets():
    """Every factor set, the one in force marked; upload a CSV as a draft."""
    in_force = factors.set_in_force(today())
    return render_template("console/district/factor_sets.html", sets=factors.list_factor_sets(), in_force=in_force)


@bp.post("/district/factor-sets")
@pages.allow(ADMIN)
@transactional
def upload_factor_set():
    """A draft from an uploaded CSV, through the service the API's CSV upload uses."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise validation_error("file", "Choose a CSV file.")
    draft = factors.create_factor_set_from_csv(upload.read(), g.console_user.id)
    return back_to("console.factor_set", code=draft.code)


@bp.get("/district/factor-sets/<code>")
@pages.allow(ADMIN)
def factor_set(code):
    """A set's rows; for a draft, what it changes against the set in force, and the publish button."""
    found = factors.get_factor_set(code)
    in_force = factors.set_in_force(today())
    diff = factors.compare_factor_sets(found, in_force) if in_force is not None and in_force.id != found.id else None
    return render_template("console/district/factor_set.html", factor_set=found, in_force=in_force, diff=diff)


@bp.post("/district/factor-sets/<code>/publish")
@pages.allow(ADMIN)
@transactional
def publish_factor_set(code):
    """Publish a draft: immutable from now on, in force from its effective_from."""
    factors.publish_factor_set(code, g.console_user.id)
    return back_to("console.factor_set", code=code)


# ---------------------------------------------------------------- exports


@bp.get("/district/exports")
@pages.allow(ADMIN)
def district_exports():
    """The export form and the latest exports with their status."""
    return render_template("console/district/exports.html", recent=[exports.export_view(e) for e in exports.recent()],
                           group_keys=exports.GROUP_KEYS, formats=exports.FORMATS,
                           period_from=f"{dashboard.month_labels(today(), dashboard.MONTHS)[0]}-01", period_to=today())


@bp.post("/district/exports")
@pages.allow(ADMIN)
@transactional
def request_export():
    """Queue an export with the API's service; its page shows the progress."""
    data = load_strict(ExportIn(), form_payload({"period_from": "str", "period_to": "str", "format": "str"},
                                                lists={"group_by": request.form.getlist("group_by")}))
    export = exports.create_export(g.console_user, data)
    return back_to("console.district_export", export_id=export.id)


@bp.get("/district/exports/<export_id>")
@pages.allow(ADMIN)
def district_export(export_id):
    """One export: reloads itself until it is done, then offers the file."""
    view = exports.export_view(exports.get_export(export_id))
    return render_template("console/district/export.html", export=view)


@bp.get("/district/exports/<export_id>/status")
@pages.allow(ADMIN)
def district_export_status(export_id):
    """The export's status and progress as JSON, for a page that polls."""
    view = exports.export_view(exports.get_export(export_id))
    done = view["status"] == "done"
    return jsonify({"id": view["id"], "status": view["status"], "progress": view["progress"],
                    "row_count": view["row_count"],
                    "download_url": url_for("console.download_district_export", export_id=view["id"]) if done else None})


@bp.get("/district/exports/<export_id>/download")
@pages.allow(ADMIN)
def download_district_export(export_id):
    """The export's file, as the API serves it."""
    return export_file(export_id)


# ---------------------------------------------------------------- reduction batches and parks


@bp.get("/district/batches")
@pages.allow(ADMIN)
def reduction_batches():
    """Issued batches with serial ranges and what is left to transfer; issue a batch; transfer to a park."""
    rows = batches.list_batches(None, BATCHES_PER_PAGE, decode_cursor(request.args.get("cursor")))
    listed = page(rows, BATCHES_PER_PAGE, batches.batch_view)
    names = dict(db.session.execute(select(Community.id, Community.name)).all())
    return render_template("console/district/batches.html", batches=listed["items"],
                           next_cursor=listed["next_cursor"], community_names=names,
                           communities=sorted(names.items(), key=lambda item: (item[1], item[0])),
                           parks=parks.list_parks(g.console_user), year_start=today().replace(month=1, day=1),
                           today=today())


@bp.post("/district/batches")
@pages.allow(ADMIN)
@transactional
def issue_batch():
    """Issue a community's verified, unbatched grams of a period as one serial range."""
    data = load_form(BatchIn(), {"community_id": "str", "period_from": "str", "period_to": "str"})
    batches.issue_batch(data["community_id"], data["period_from"], data["period_to"], g.console_user.id)
    return back_to("console.reduction_batches")


@bp.get("/district/parks")
@pages.allow(ADMIN)
def district_parks():
    """Every park's received, retired and available grams; open a park."""
    return render_template("console/district/parks.html", parks=[parks.park_view(p) for p in parks.list_parks(g.console_user)])


@bp.post("/district/parks")
@pages.allow(ADMIN)
@transactional
def create_park():
    """Open an industrial park's offset account."""
    parks.create_park(load_form(ParkIn(), {"name": "text"})["name"])
    return back_to("console.district_parks")


@bp.post("/district/transfers")
@pages.allow(ADMIN)
@transactional
def transfer_to_park():
    """Transfer a batch's lowest untransferred serials into the park chosen in the form."""
    park_id = request.form.get("park_id", "").strip()
    if not park_id:
        raise validation_error("park_id", "Choose a park.")
    data = load_form(TransferIn(), {"batch_id": "str", "quantity_g": "int"})
    park = parks.park_for(g.console_user, park_id)
    parks.transfer(park, data["batch_id"], data["quantity_g"], g.console_user.id)
    return back_to("console.park_statement", park_id=park.id)



@bp.app_template_filter("plain_number")
def plain_number(value) -> str:
    """A Decimal as written, without trailing zeros or an exponent: 1.000000 → 1, 100 → 100, 0.0467 → 0.0467."""
    return f"{value.normalize():f}" if isinstance(value, Decimal) else str(value)
