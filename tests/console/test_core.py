"""The console's core: login through the accounts service, logout, the role gate, CSRF, languages, errors."""
import pytest
from sqlalchemy import func, select

from app.accounts.models import LoginSession
from app.console import pages, staff
from app.extensions import db
from tests.console.conftest import console_login, cookie_session_for, csrf_of, post_form, text_of
from tests.fixtures import PASSWORD

CONSOLE_ROLES = ("community_staff", "district_admin", "park_manager")


def console_get_paths(app) -> list[str]:
    """Every console page a GET can open (placeholders filled with a dummy id), from the URL map."""
    paths = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("console.") or "GET" not in rule.methods:
            continue
        if rule.endpoint in ("console.static", "console.login"):
            continue
        path = rule.rule
        for argument in rule.arguments:
            path = path.replace(f"<path:{argument}>", "x").replace(f"<int:{argument}>", "1").replace(
                f"<{argument}>", "x")
        paths.append(path)
    return sorted(paths)


def test_staff_log_in_with_phone_and_password_and_land_on_their_home(app, client, staff):
    reply = console_login(client, staff.user.phone)

    assert reply.status_code == 303 and reply.headers["Location"] == "/console/"
    cookie = reply.headers["Set-Cookie"]
    assert cookie.startswith("sjc_console=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    home = client.get("/console/", follow_redirects=True)
    assert home.status_code == 200 and "测试员工" in text_of(home)
    assert db.session.scalar(select(func.count()).select_from(LoginSession)
                             .where(LoginSession.user_id == staff.id, LoginSession.revoked_at.is_(None))) == 2


@pytest.mark.parametrize("role,home", [("community_staff", "/console/staff"), ("district_admin", "/console/district"),
                                       ("park_manager", "/console/park")])
def test_each_console_role_has_a_home_page(request, app, make_staff, role, home):
    scope = {"park_id": request.getfixturevalue("park").id} if role == "park_manager" else {}
    person = make_staff(role, **scope)
    client = app.test_client()
    console_login(client, person.user.phone)

    reply = client.get("/console/")

    assert reply.status_code == 302 and reply.headers["Location"] == home
    assert client.get(home).status_code == 200


def test_a_wrong_password_shows_the_form_again_with_the_reason_and_opens_no_session(client, staff):
    reply = console_login(client, staff.user.phone, "wrong-password-1")

    assert reply.status_code == 401 and "手机号或密码错误" in text_of(reply)
    assert "sjc_console=" not in reply.headers.get("Set-Cookie", "")
    assert db.session.scalar(select(func.count()).select_from(LoginSession)
                             .where(LoginSession.user_id == staff.id)) == 1  # only the fixture's API login


def test_failed_logins_through_the_api_and_the_console_count_against_the_same_phone(client, staff):
    for _ in range(5):
        assert client.post("/api/v1/auth/login", json={"phone": staff.user.phone, "password": "nope-123"}).status_code == 401
    for _ in range(5):
        assert console_login(client, staff.user.phone, "nope-123").status_code == 401

    locked = console_login(client, staff.user.phone)

    assert locked.status_code == 429 and "text/html" in locked.content_type
    assert 0 < int(locked.headers["Retry-After"]) <= 15 * 60 and "尝试次数过多" in text_of(locked)
    assert client.post("/api/v1/auth/login", json={"phone": staff.user.phone, "password": PASSWORD}).status_code == 429


def test_logout_revokes_the_login_session_and_the_old_cookie_no_longer_opens_pages(app, staff):
    client = app.test_client()
    console_login(client, staff.user.phone)
    cookie = client.get_cookie("sjc_console", path="/console/").value

    reply = post_form(client, "/console/logout", page="/console/staff")

    assert reply.status_code == 303 and reply.headers["Location"] == "/console/login"
    revoked = db.session.scalars(select(LoginSession).where(LoginSession.user_id == staff.id,
                                                            LoginSession.revoked_reason == "console_logout")).all()
    assert len(revoked) == 1 and revoked[0].revoked_at is not None
    replay = app.test_client()
    replay.set_cookie("sjc_console", cookie, path="/console/")
    assert replay.get("/console/staff").status_code == 302


def test_every_cookie_the_console_sets_is_httponly_and_samesite_lax(app, staff):
    client = app.test_client()
    console_login(client, staff.user.phone)

    reply = post_form(client, "/console/logout", page="/console/staff?lang=en")

    cookies = reply.headers.getlist("Set-Cookie")
    assert {c.split("=")[0] for c in cookies} >= {"session", "sjc_console"}
    for cookie in cookies:
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie, cookie


def test_the_api_token_of_a_staff_member_keeps_working_after_a_console_logout(app, client, staff):
    console_login(client, staff.user.phone)

    post_form(client, "/console/logout", page="/console/staff")

    assert client.get("/api/v1/me", headers=staff.headers).status_code == 200


@pytest.mark.parametrize("who", ["resident", "clerk"])
def test_residents_and_merchant_staff_cannot_open_any_console_page(app, request, who):
    person = request.getfixturevalue(who)
    client = app.test_client()
    cookie_session_for(client, person)  # even holding a valid console cookie
    paths = console_get_paths(app)

    assert len(paths) >= 5
    for path in paths:
        reply = client.get(path)
        assert reply.status_code == 403, (who, path, reply.status_code)
        assert "text/html" in reply.content_type and "管理后台仅供" in text_of(reply)


@pytest.mark.parametrize("who", ["resident", "clerk"])
def test_the_login_form_refuses_residents_and_merchant_staff_without_opening_a_session(app, request, who):
    person = request.getfixturevalue(who)
    client = app.test_client()
    before = db.session.scalar(select(func.count()).select_from(LoginSession))

    reply = console_login(client, person.user.phone)

    assert reply.status_code == 403 and "sjc_console=" not in reply.headers.get("Set-Cookie", "")
    assert db.session.scalar(select(func.count()).select_from(LoginSession)) == before


def test_without_a_login_every_console_page_redirects_to_the_login_form(app, client):
    for path in console_get_paths(app):
        reply = client.get(path)
        assert reply.status_code == 302 and reply.headers["Location"].startswith("/console/login?next="), path


def test_after_login_the_staff_member_returns_to_the_page_they_asked_for_and_never_off_site(app, staff):
    client = app.test_client()
    assert console_login(client, staff.user.phone, next="/console/staff").headers["Location"] == "/console/staff"
    other = app.test_client()
    assert console_login(other, staff.user.phone, next="//evil.example/console/").headers["Location"] == "/console/"


def test_a_park_manager_cannot_open_community_staff_pages(app, make_staff, park):
    manager = make_staff("park_manager", park_id=park.id)
    client = app.test_client()
    console_login(client, manager.user.phone)

    reply = client.get("/console/staff")

    assert reply.status_code == 403 and "text/html" in reply.content_type


def test_a_post_without_or_with_a_wrong_csrf_token_is_refused_and_changes_nothing(app, staff):
    client = app.test_client()
    console_login(client, staff.user.phone)

    missing = client.post("/console/logout")
    wrong = client.post("/console/logout", data={"csrf_token": "0" * 64})
    login_without = app.test_client().post("/console/login", data={"phone": staff.user.phone, "password": PASSWORD})

    assert missing.status_code == 400 and wrong.status_code == 400 and login_without.status_code == 400
    assert "表单已过期" in text_of(missing)
    assert client.get("/console/staff").status_code == 200  # still logged in
    assert db.session.scalar(select(func.count()).select_from(LoginSession)
                             .where(LoginSession.revoked_at.is_not(None))) == 0


@pytest.mark.parametrize("token", ["é", "中文" * 32, "ÿ" * 64])
def test_a_csrf_token_that_is_not_ascii_is_refused_like_any_wrong_one(app, staff, token):
    client = app.test_client()
    client.get("/console/login")  # the pre-login cookie the token is checked against

    before_login = client.post("/console/login", data={"phone": staff.user.phone, "password": PASSWORD,
                                                       "csrf_token": token})
    console_login(client, staff.user.phone)
    logged_in = client.post("/console/logout", data={"csrf_token": token})

    assert before_login.status_code == 400 and logged_in.status_code == 400
    assert client.get("/console/staff").status_code == 200  # still logged in


def test_a_csrf_token_of_one_session_is_refused_in_another(app, staff, make_staff):
    first, second = app.test_client(), app.test_client()
    console_login(first, staff.user.phone)
    console_login(second, make_staff().user.phone)
    token = csrf_of(first.get("/console/staff"))

    assert second.post("/console/logout", data={"csrf_token": token}).status_code == 400


def test_the_console_is_in_chinese_by_default_and_switches_to_english(app, console):
    assert "工作人员登录" in text_of(app.test_client().get("/console/login"))

    english = console.get("/console/staff?lang=en")
    later = console.get("/console/staff")
    back = console.get("/console/staff?lang=zh")

    assert "Log out" in text_of(english) and "Log out" in text_of(later)
    assert "sjc_console_lang=en" in english.headers["Set-Cookie"]
    assert "退出登录" in text_of(back)


def test_an_unknown_console_page_is_an_html_404(console):
    reply = console.get("/console/no-such-page")

    assert reply.status_code == 404 and "text/html" in reply.content_type and "没有这个后台页面" in text_of(reply)


def test_the_console_is_not_part_of_the_api_document(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]

    assert paths and not [p for p in paths if "console" in p]


def test_each_role_navigation_links_only_to_pages_the_role_may_open(app):
    for role, entries in pages.NAV.items():
        for endpoint, label in entries:
            roles = getattr(app.view_functions[endpoint], "console_roles", CONSOLE_ROLES)
            assert role in roles, (role, endpoint)


def test_every_console_text_has_a_chinese_translation():
    import re
    from pathlib import Path

    from babel.messages.pofile import read_po

    from app.i18n import TRANSLATIONS_DIR

    with (TRANSLATIONS_DIR / "zh" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        known = {m.id for m in read_po(handle, locale="zh") if m.id and m.string}
    console_dir = Path(pages.__file__).parent
    written = set()
    for template in console_dir.rglob("*.html"):
        written.update(re.findall(r"""_\(\s*(?:"([^"]+)"|'([^']+)')""", template.read_text(encoding="utf-8")))
    texts = {a or b for a, b in written}
    for module in console_dir.rglob("*.py"):
        source = module.read_text(encoding="utf-8")
        texts.update(re.findall(r'flash_message\("([^"]+)"', source))
    texts |= {label for entries in pages.NAV.values() for _, label in entries} | set(pages.ROLE_LABELS.values())
    texts |= set(staff.STATUS_LABELS.values()) | set(staff.SOURCE_LABELS.values())

    assert len(texts) >= 100 and sorted(texts - known) == []


def test_every_console_page_loads_its_assets_from_the_app_itself(app, console):
    import re

    from app.console import pages as console_pages
    from flask import url_for

    with app.test_request_context():
        paths = ["/console/login"] + [url_for(endpoint) for endpoint, _ in console_pages.NAV["community_staff"]]
    for path in paths:
        html = text_of(console.get(path))
        for ref in re.findall(r'<(?:link|script|img)[^>]+(?:src|href)="([^"]+)"', html):
            assert ref.startswith(("/console/", "data:")), (path, ref)
            if ref.startswith("/console/"):
                assert console.get(ref).status_code == 200, ref
        assert not re.search(r"//cdn|jsdelivr|unpkg|googleapis", html)


def test_the_console_cookie_is_secure_outside_development(monkeypatch):
    from app import create_app
    from tests.conftest import test_config

    import base64

    settings = {**test_config(), "APP_ENV": "production", "SECRET_KEY": "s" * 40, "JWT_SECRET_KEY": "j" * 40,
                "DATA_KEYS": "k1:" + base64.b64encode(b"k" * 32).decode()}
    monkeypatch.delenv("CONSOLE_COOKIE_SECURE", raising=False)
    production = create_app(settings)
    monkeypatch.setenv("CONSOLE_COOKIE_SECURE", "false")
    overridden = create_app(settings)

    assert production.config["CONSOLE_COOKIE_SECURE"] is True and overridden.config["CONSOLE_COOKIE_SECURE"] is False
