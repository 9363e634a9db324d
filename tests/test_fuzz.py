"""Property-based fuzzing of every documented operation (schemathesis over the WSGI app).

Valid and invalid inputs, with a resident's token and with a district admin's:
never a 5xx, and every error reply is application/problem+json with a `code`.
Operations that other features add are picked up from /api/v1/openapi.json.
Each operation is its own pytest item, named `test_fuzz_as_a_resident[POST /api/v1/actions][resident]`.
"""
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from app import create_app
from tests import conftest

PROBLEM = "application/problem+json"
# Bounded so that the file stays well under 3 minutes as features add operations; the admin pass
# mostly meets 403s on resident routes, so it needs fewer examples.
RESIDENT_SETTINGS = settings(max_examples=10, deadline=None, database=None, suppress_health_check=list(HealthCheck))
ADMIN_SETTINGS = settings(RESIDENT_SETTINGS, max_examples=5)


# The schema is read at collection from an app built with the test settings (reading it touches
# no database); every call goes to the session's `app`, inside the test's rolled-back transaction.
# (schemathesis.pytest.from_fixture would be lazier, but it writes Node._nodeid, gone in pytest 9.)
_LOADER = create_app(conftest.test_config())


def load_schema(*, coverage: bool):
    """The API's schema; `coverage` adds schemathesis' deterministic boundary and negative cases."""
    loaded = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", _LOADER)
    loaded.config.phases.coverage.enabled = coverage
    # Wrong methods are covered once in test_errors.py (405 keeps Allow); here they only cost time.
    loaded.config.phases.coverage.unexpected_methods = set()
    return loaded


resident_schema = load_schema(coverage=True)
admin_schema = load_schema(coverage=False)


def pytest_generate_tests(metafunc):
    """Parametrise `caller`, so that each operation gets a node id of its own.

    schemathesis names each item after its operation, but pytest 9 builds the node id from
    the function's name plus its parameters: without a parameter every operation of a test
    shares one id, and a failure does not say which operation failed.
    """
    if "caller" in metafunc.fixturenames:
        metafunc.parametrize("caller", [metafunc.function.__name__.rsplit("_as_a_", 1)[-1]])


def assert_problem_json(case, response):
    """Our own check: an error reply is problem+json carrying a stable code and its status."""
    if response.status_code < 400:
        return
    where = f"{case.method} {case.formatted_path} -> {response.status_code}"
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type.startswith(PROBLEM), f"{where}: {content_type}"
    body = response.json()
    assert isinstance(body.get("code"), str) and body["code"], where
    assert body.get("status") == response.status_code, where
    if response.status_code == 422 and body["code"] == "validation_error":
        assert isinstance(body.get("errors"), dict), where


def fuzz(app, case, headers):
    response = case.call(app=app, headers=headers)
    case.validate_response(response, checks=[not_a_server_error])
    assert_problem_json(case, response)


@resident_schema.parametrize()
@RESIDENT_SETTINGS
def test_fuzz_as_a_resident(app, case, resident, caller):
    fuzz(app, case, resident.headers)


@admin_schema.parametrize()
@ADMIN_SETTINGS
def test_fuzz_as_a_district_admin(app, case, admin, caller):
    fuzz(app, case, admin.headers)
