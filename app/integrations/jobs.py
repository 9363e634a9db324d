"""The operator CSV import job: rows in chunks, one unit of work per chunk, resumable."""
import logging

from sqlalchemy.exc import OperationalError

from .. import jobs
from ..errors import is_write_conflict
from ..extensions import db
from ..transaction import transaction
from . import service
from .models import IntegrationImport

log = logging.getLogger("app.integrations")
CHUNK_RETRIES = 3


def run_import(import_id: str) -> None:
    """Record every row of an import; a re-run continues after the last committed chunk (a chunked job)."""
    imp = db.session.get(IntegrationImport, import_id)
    if imp is None or imp.status in ("done", "failed"):
        return
    try:
        rows = service.csv_rows(imp.csv_text)
        while _chunk_with_retries(import_id, rows):
            pass
    except Exception:
        db.session.rollback()
        with transaction():
            service.fail_import(import_id)
        raise


def _chunk_with_retries(import_id: str, rows: list) -> bool:
    """One chunk in its own unit of work; a deadlock with a concurrent writer is retried."""
    for attempt in range(1, CHUNK_RETRIES + 1):
        try:
            with transaction():
                jobs.keep_alive()  # this runner is alive: the sweep leaves the job to it
                return service.process_import_chunk(import_id, rows)
        except OperationalError as exc:
            if attempt == CHUNK_RETRIES or not is_write_conflict(exc):
                raise
            log.warning("import %s: chunk hit a write conflict, retrying (%d)", import_id, attempt)
    return False
