"""Flask's session cookie (the console's flash messages): read when sent, never built when not."""
from flask import request

from app.console import FlashSessionInterface


def test_a_flashed_message_travels_in_the_cookie_and_a_request_without_one_starts_empty(app):
    interface = app.session_interface
    assert isinstance(interface, FlashSessionInterface)
    with app.test_request_context("/console/"):
        session = interface.open_session(app, request)
        assert dict(session) == {} and not session.modified
        session["_flashes"] = [("message", "已保存")]
        response = app.response_class()
        interface.save_session(app, session, response)
        cookie = response.headers["Set-Cookie"].split(";")[0]

    with app.test_request_context("/console/", headers={"Cookie": cookie}):
        assert interface.open_session(app, request)["_flashes"] == [("message", "已保存")]
    with app.test_request_context("/console/", headers={"Cookie": cookie[:-3] + "xyz"}):  # forged: empty
        assert dict(interface.open_session(app, request)) == {}
