"""Console fixtures: a logged-in test client per role, the CSRF token of a page, and (below) a real browser."""
import re

import pytest

from app.accounts import service as accounts
from app.console import session as console_session
from app.extensions import db
from tests.fixtures import PASSWORD, next_phone
from tests.rewards.builders import *  # noqa: F401,F403  merchant, clerk, reward, fund

CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


def csrf_of(reply) -> str:
    """The CSRF token in a console page's forms."""
    found = CSRF.search(reply.get_data(as_text=True))
    assert found, reply.get_data(as_text=True)[:500]
    return found.group(1)


def console_login(client, phone, password=PASSWORD, **extra):
    """Log in through the console's form, as a browser would: GET the form, POST it with its token."""
    token = csrf_of(client.get("/console/login"))
    return client.post("/console/login", data={"phone": phone, "password": password, "csrf_token": token, **extra})


def post_form(client, path, data=None, page=None):
    """POST a console form with the token of `page` (default: the page at `path`)."""
    token = csrf_of(client.get(page or path))
    return client.post(path, data={**(data or {}), "csrf_token": token})


def cookie_session_for(client, person) -> str:
    """Give `client` a valid console cookie for `person` without the login form (any role); the session id."""
    session = accounts.open_session(person.user)
    db.session.commit()
    client.set_cookie(console_session.COOKIE, console_session.cookie_value(session.id), path="/console/")
    return session.id


@pytest.fixture
def console(app, staff):
    """A test client logged in to the console as `staff` (community staff)."""
    client = app.test_client()
    assert console_login(client, staff.user.phone).status_code == 303
    return client


def text_of(reply) -> str:
    return reply.get_data(as_text=True)


@pytest.fixture
def park():
    from app.district import parks

    made = parks.create_park(f"测试园区-{next_phone()}")
    db.session.commit()
    return made


# ---------------------------------------------------------------- a real browser against a real server

try:
    from selenium.webdriver.common.by import By
except ImportError:  # the `browser` fixture says what is missing (and fails under CI=true)
    By = None

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                  "--no-first-run", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--window-size=1280,1000")
WAIT_SECONDS = 20


@pytest.fixture
def live_server(app):
    """The app served by a real HTTP server thread on a free port, against the test database; its base URL.

    Browser tests are `committing`: what the test writes is really committed, so the server's own
    connections see it (and the tables are emptied after the test).
    """
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="console-live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def _chromium_missing() -> str | None:
    import os
    import shutil

    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.exists(path) or shutil.which(os.path.basename(path))):
            return f"{path} is not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture
def browser(live_server, tmp_path):
    """Headless Debian Chromium driven by Selenium, pointed at `live_server` (browser.base_url).

    Under CI=true a missing browser fails the test; elsewhere the test is skipped, saying why.
    """
    import os

    from tests.conftest import ON_CI

    missing = _chromium_missing()
    if missing:
        if ON_CI:
            pytest.fail(f"browser tests must run in CI: {missing}")
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM if os.path.exists(CHROMIUM) else __import__("shutil").which("chromium")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.add_argument("--lang=zh-CN")
    driver_path = CHROMEDRIVER if os.path.exists(CHROMEDRIVER) else __import__("shutil").which("chromedriver")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(60)
    driver.base_url = live_server
    try:
        yield driver
    finally:
        driver.quit()


def wait(page, condition, seconds: int = WAIT_SECONDS):
    """Wait until `condition(page)` holds; an element of the page being replaced (or not there yet) is retried."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    def settled(driver):
        try:
            return condition(driver)
        except WebDriverException as error:
            # Chromium's word for an element whose page was replaced while it was read (a form's
            # reply arriving): stale, as StaleElementReferenceException says it elsewhere.
            if "does not belong to the document" in (error.msg or ""):
                return False
            raise

    retried = (NoSuchElementException, StaleElementReferenceException)
    return WebDriverWait(page, seconds, ignored_exceptions=retried).until(settled)


def login(page, phone, password=PASSWORD):
    """Log in through the console's form and WAIT until the browser has left /console/login."""
    db.session.commit()  # the server's connections must not wait behind a transaction of the test's
    page.get(f"{page.base_url}/console/login")
    page.find_element(By.ID, "phone").send_keys(phone)
    page.find_element(By.ID, "password").send_keys(password)
    page.find_element(By.ID, "login-button").click()
    wait(page, lambda driver: "/console/login" not in driver.current_url)
