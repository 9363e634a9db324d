"""The staff web console at /console/: server-rendered pages for community staff, district admins and
park managers, in Chinese by default (English on request).

Not part of the API: a plain Flask blueprint, so it stays out of the OpenAPI document. Every page
goes through the same services as the API's routes; the console only renders and submits forms.
"""
from flask import Blueprint, current_app, g, redirect, render_template, request, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_babel import gettext
from werkzeug.exceptions import HTTPException

from ..config import DEVELOPMENT_ENVS, _bool
from ..errors import AppError
from ..extensions import db
from ..i18n import LANGUAGES, note_untranslated, translate as translate_message
from . import csrf, pages, session

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
               static_folder="static", static_url_path="/static")

LANGUAGE_COOKIE = "sjc_console_lang"
CONSOLE_LANGUAGE = "zh"
# Endpoints open without a console login (the login form itself and its stylesheet).
PUBLIC = {"console.login", "console.login_submit", "console.static"}


def init_app(app) -> None:
    """Register the console on `app` (create_app calls this)."""
    from . import views, staff  # noqa: F401  the pages register their routes and nav entries (in this order)
    from . import district, parks  # noqa: F401  (after views: "Home" comes first in the navigation)

    app.config.setdefault("CONSOLE_SESSION_SECONDS", session.MAX_AGE_SECONDS)
    # Outside development and demo the cookie only travels over HTTPS (env CONSOLE_COOKIE_SECURE overrides).
    app.config.setdefault("CONSOLE_COOKIE_SECURE", _bool("CONSOLE_COOKIE_SECURE",
                                                         app.config.get("APP_ENV") not in DEVELOPMENT_ENVS))
    # Flask's own session cookie carries only the console's flash messages: keep it as strict as ours.
    if app.config.get("SESSION_COOKIE_SAMESITE") is None:
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = app.config["SESSION_COOKIE_SECURE"] or app.config["CONSOLE_COOKIE_SECURE"]
    app.session_interface = FlashSessionInterface()
    app.register_blueprint(bp)


class FlashSessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie session (the console's flash messages), opened without building its
    signer when the request sends no such cookie: every API request, about 2 % of a pending report."""

    def open_session(self, app, request):
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)


def _language() -> str:
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        g.language_chosen = asked
        return asked
    saved = request.cookies.get(LANGUAGE_COOKIE)
    return saved if saved in LANGUAGES else CONSOLE_LANGUAGE


@bp.before_request
def _gate():
    """Language, login, console role and CSRF, before any console page runs."""
    from ..errors import Forbidden

    g.language = _language()
    if request.method == "POST":
        csrf.check()
    if request.endpoint in PUBLIC:
        g.console_user = session.current_user()
        return None
    user = session.current_user()
    if user is None:
        return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
    if user.role not in pages.CONSOLE_ROLES:
        g.console_user = None
        raise Forbidden("The console is for community staff, district admins and park managers")
    g.console_user = user
    return None


@bp.after_request
def _remember(response):
    if g.get("language_chosen"):
        response.set_cookie(LANGUAGE_COOKIE, g.language_chosen, max_age=365 * 24 * 3600, path="/console/",
                            samesite="Lax", httponly=True)
    response.headers.setdefault("Cache-Control", "private, no-store")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Content-Security-Policy",
                                "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
                                "object-src 'none'; frame-ancestors 'none'; form-action 'self'")
    return csrf.set_pre_login_cookie(response)


@bp.app_template_global()
def csrf_token() -> str:
    return csrf.token()


@bp.app_template_filter("console_time")
def console_time(moment, form: str = "%Y-%m-%d %H:%M") -> str:
    """An aware time in Asia/Shanghai (the district's clock), or "" for none."""
    from ..localtime import SHANGHAI

    return moment.astimezone(SHANGHAI).strftime(form) if moment is not None else ""


@bp.context_processor
def _page_context():
    user = g.get("console_user")
    return {
        "user": user,
        "nav": pages.nav_for(user.role) if user is not None else [],
        "language": g.get("language", CONSOLE_LANGUAGE),
        "tr": translate,
        "_": text,
        "role_labels": pages.ROLE_LABELS,
    }


def text(message: str, **values) -> str:
    """A console text (a msgid written in the template or code) in the console's language."""
    if current_app.config.get("I18N_CHECK_CATALOGUE"):
        note_untranslated(message)  # tests fail at the end of the run on any console text without Chinese
    return gettext(message, **values)


def translate(message: str | None) -> str | None:
    """A message that arose elsewhere (a service's error, a flash) in the console's language."""
    if message and current_app.config.get("I18N_CHECK_CATALOGUE"):
        note_untranslated(message)
    return translate_message(message) if message else message


def render_error(status: int, title: str, detail: str | None = None, errors: dict | None = None):
    return render_template("console/error.html", status=status, title=translate(title),
                           detail=translate(detail) if detail and detail != title else None,
                           errors={field: [translate(m) for m in messages] for field, messages in (errors or {}).items()},
                           back=_back()), status


def _back() -> str | None:
    referrer = request.referrer or ""
    if referrer.startswith(request.host_url.rstrip("/") + "/console/"):
        return referrer
    return None


@bp.errorhandler(AppError)
def _app_error(error: AppError):
    db.session.rollback()
    return render_error(error.status, error.title, error.detail, error.extra.get("errors"))


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    if exc.code is None or exc.code < 400:  # routing redirects pass through
        return exc
    from ..errors import HTTP_CODES

    db.session.rollback()
    _, title = HTTP_CODES.get(exc.code, ("http_error", exc.name))
    if exc.code == 429:
        from ..errors import _retry_after

        body, status = render_error(429, title, "Too many attempts; wait a few minutes and try again.")
        return body, status, {"Retry-After": str(_retry_after(exc))}
    return render_error(exc.code, title, exc.description)


@bp.route("/<path:anything>")
def not_found(anything):
    """Any other console address: the console's 404 page, not the API's JSON."""
    from ..errors import NotFound

    raise NotFound("There is no such console page")


def back_to(endpoint: str, **values):
    """A 303 back to a console page after a form was handled."""
    return redirect(url_for(endpoint, **values), code=303)


__all__ = ["bp", "init_app", "back_to", "render_error"]
