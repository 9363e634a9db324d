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
