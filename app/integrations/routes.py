"""Integrations: registration by the district, signed records, operator CSV imports."""
import functools
from datetime import datetime, timedelta, timezone

from flask import g, request

from ..blueprint import Blueprint
from ..auth import SIGNATURE_SKEW, current_user, require_auth, verify_signature
from ..idempotency import idempotent
from ..paging import page
from ..replay import claim_signature
from ..schemas import NoBody, PageQuery
from ..transaction import transactional
from . import service
from .schemas import (
    ImportAcceptedOut, ImportOut, IntegrationCreatedOut, IntegrationIn, IntegrationList, IntegrationOut,
    IntegrationSecretOut, RecordResultsOut, RecordsIn, SecretRotationIn,
)

bp = Blueprint("integrations", __name__, description="Signed device and operator integrations, CSV imports")

SIGNATURE_HEADERS = [
    {"in": "header", "name": "X-Integration-Id", "required": True, "schema": {"type": "string"},
     "description": "The integration's key id"},
    {"in": "header", "name": "X-Timestamp", "required": True, "schema": {"type": "string"},
     "description": "Unix seconds, within 300 s of the server clock"},
    {"in": "header", "name": "X-Signature", "required": True, "schema": {"type": "string"},
     "description": 'hex HMAC-SHA256(secret, timestamp + "\\n" + method + "\\n" + path + "\\n" + hex sha256(body)), '
                    'where path is the request path followed by "?" and the raw query string when the URL has '
                    "one. Each signature is accepted once: the same X-Signature again within the timestamp "
                    "window is 401, so a retry is signed afresh with a new X-Timestamp (and the same "
                    "Idempotency-Key to get the first reply back)."},
]


def signed_by_integration(view):
    """Authenticate the request by its integration signature, else 401; Idempotency-Key scopes per integration."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        integration = service.signing_integration(request.headers.get("X-Integration-Id"))
        signature, timestamp = verify_signature(service.verifying_secrets(integration),
                                                request.headers.get("X-Timestamp"), request.headers.get("X-Signature"))
        window_end = timestamp + SIGNATURE_SKEW + 1
        claim_signature(signature, datetime.fromtimestamp(window_end, timezone.utc))
        g.integration, g.caller_id = integration, f"integration:{integration.id}"
        return view(*args, **kwargs)

    wrapper.__dict__.setdefault("_apidoc", {}).setdefault("manual_doc", {}).setdefault(
        "parameters", []
    ).extend(SIGNATURE_HEADERS)
    return wrapper


@bp.route("/integrations", methods=["POST"])
@require_auth("district_admin")
@transactional
@bp.arguments(IntegrationIn)
@bp.response(201, IntegrationCreatedOut)
def create_integration(data):
    """Register an integration; the reply is the only place its secret is shown

    Not idempotent by design: a stored reply would keep the secret.
    """
    integration, _ = service.create_integration(**data, actor_id=current_user().id)
    return integration


@bp.route("/integrations", methods=["GET"])
@require_auth("district_admin")
@bp.arguments(PageQuery, location="query")
@bp.response(200, IntegrationList)
def list_integrations(query):
    """Registered integrations, newest first (no secrets)"""
    return page(service.list_integrations(query["limit"], query["cursor"]), query["limit"])


@bp.route("/integrations/<integration_id>/deactivate", methods=["POST"])
@require_auth("district_admin")
@transactional
@bp.arguments(NoBody, required=False)
@bp.response(200, IntegrationOut)
@bp.alt_response(409, description="invalid_state: already inactive")
def deactivate_integration(_, integration_id):
    """Deactivate an integration: its signed requests are refused from now on"""
    integration = service.deactivate_integration(integration_id)
    return integration


@bp.route("/integrations/<integration_id>/secret", methods=["POST"])
@require_auth("district_admin")
@transactional
@bp.arguments(SecretRotationIn, required=False)
@bp.response(201, IntegrationSecretOut)
@bp.alt_response(404, description="not_found: no such integration")
@bp.alt_response(409, description="invalid_state: the integration is inactive")
def rotate_secret(data, integration_id):
    """Give an integration a new signing secret; the reply is the only place it is shown

    The secret it replaces keeps verifying signatures for `overlap_seconds` (default one day, at most
    seven, 0 to stop it at once), so devices can move to the new one without downtime; after that only
    the new secret verifies. A secret still in an earlier overlap stops now. Not idempotent by design:
    a stored reply would keep the secret.
    """
    integration, _ = service.rotate_secret(integration_id, timedelta(seconds=data["overlap_seconds"]))
    return integration


@bp.route("/integrations/actions", methods=["POST"])
@signed_by_integration
@idempotent
@bp.arguments(RecordsIn)
@bp.response(200, RecordResultsOut)
@bp.alt_response(401, description="unauthenticated: bad or missing signature, stale timestamp, a signature "
                                  "already received, unknown or inactive integration")
def push_actions(data):
    """Signed action records from a device or operator: each created, duplicate or rejected"""
    return {"results": service.ingest_records(g.integration, data["records"])}


@bp.route("/integrations/<integration_id>/imports", methods=["POST"])
@require_auth("district_admin")
@idempotent
@bp.doc(requestBody={"required": True, "content": {"text/csv": {"schema": {"type": "string"}}},
                     "description": "UTF-8 CSV, at most 2 MB, header " + ",".join(service.CSV_COLUMNS)})
@bp.response(202, ImportAcceptedOut)
@bp.alt_response(413, description="payload_too_large")
@bp.alt_response(415, description="unsupported_media_type")
def create_import(integration_id):
    """Import an operator's daily CSV file as a background job"""
    imp = service.create_import(integration_id, request.get_data(), request.mimetype, current_user().id)
    return {"id": imp.id, "status": imp.status}


@bp.route("/imports/<import_id>", methods=["GET"])
@require_auth("district_admin")
@bp.response(200, ImportOut)
def get_import(import_id):
    """An import's progress, counts and per-row error report"""
    return service.get_import(import_id)
