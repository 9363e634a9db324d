"""Login, logout and the home page of each console role."""
from flask import flash, g, redirect, render_template, request, url_for

from ..accounts import service as accounts
from ..accounts.limits import login_limits
from ..errors import InvalidCredentials
from ..transaction import transactional
from . import bp, pages, session

pages.HOME.update({
    "community_staff": "console.staff_home",
    "district_admin": "console.district_home",
    "park_manager": "console.park_home",
})
pages.add_nav("console.staff_home", "Home", "community_staff")
pages.add_nav("console.district_home", "Home", "district_admin")
pages.add_nav("console.park_home", "Home", "park_manager")


def _safe_next(target: str | None) -> str | None:
    """Only a console path of this site: never another host (`//evil`, `/\\evil`) after login."""
    if target and target.startswith("/console/") and not target.startswith(("//", "/\\")) and "\\" not in target:
        return target
    return None


def _login_page(status: int = 200, message: str | None = None, phone: str = ""):
    return render_template("console/login.html", message=message, phone=phone,
                           next=_safe_next(request.values.get("next")) or ""), status


@bp.get("/login")
def login():
    """The login form (staff phone and password)."""
    if g.console_user is not None and g.console_user.role in pages.CONSOLE_ROLES:
        return redirect(url_for("console.home"))
    return _login_page()


@bp.post("/login")
@login_limits
@transactional
def login_submit():
    """Check the phone and password through the accounts service; open a login session for a console role."""
    phone = request.form.get("phone", "").strip()
    password = request.form.get("password", "")
    try:
        user = accounts.authenticate(phone, password)
    except InvalidCredentials as error:  # a 401: counted by the shared per-phone failure limit
        return _login_page(401, error.title, phone)
    if user.role not in pages.CONSOLE_ROLES:
        return _login_page(403, "The console is for community staff, district admins and park managers", phone)
    response = redirect(_safe_next(request.form.get("next")) or url_for("console.home"), code=303)
    session.set_cookie(response, session.begin(user))
    return response


@bp.post("/logout")
@transactional
def logout():
    """End this console login: its session row is revoked, the cookie dropped."""
    session.end()
    flash("You have logged out.", "info")
    response = redirect(url_for("console.login"), code=303)
    session.clear_cookie(response)
    return response


@bp.get("/")
def home():
    """Each role's own home page."""
    return redirect(url_for(pages.HOME[g.console_user.role]))


@bp.get("/staff")
@pages.allow("community_staff")
def staff_home():
    """Community staff: what waits for them."""
    return render_template("console/home.html", heading="Community staff")


@bp.get("/district")
@pages.allow("district_admin")
def district_home():
    """District admins: their pages."""
    return render_template("console/home.html", heading="District administration")


@bp.get("/park")
@pages.allow("park_manager")
def park_home():
    """Park managers: their pages."""
    return render_template("console/home.html", heading="Park management")
