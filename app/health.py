"""GET /healthz: is the database reachable, and Redis when configured."""
from flask import current_app
from marshmallow import Schema, fields
from sqlalchemy import text

from .blueprint import Blueprint
from .extensions import db
from .redis_client import redis_client

bp = Blueprint("health", __name__, description="Liveness of the service and its backing stores")


class HealthOut(Schema):
    status = fields.String()
    database = fields.String()
    redis = fields.String()


@bp.route("/healthz", methods=["GET"])
@bp.response(200, HealthOut)
@bp.alt_response(503, response="SERVICE_UNAVAILABLE", description="A backing store is down (problem+json with database and redis fields)")
def healthz():
    """Check the database and Redis"""
    report = {"status": "ok", "database": "ok", "redis": "disabled"}
    try:
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
    except Exception:  # any failure of the store means "down"; details go to the log only
        current_app.logger.exception("health check: database unreachable")
        report["database"] = "error"
    if current_app.config.get("REDIS_URL"):
        try:
            redis_client().ping()
            report["redis"] = "ok"
        except Exception:
            current_app.logger.exception("health check: redis unreachable")
            report["redis"] = "error"
    if "error" in report.values():
        from .errors import problem

        return problem(503, "unhealthy", "A backing store is down",
                       database=report["database"], redis=report["redis"])
    return report
