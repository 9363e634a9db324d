"""The operator CSV import job: rows in chunks, one commit per chunk, resumable."""
import logging

from sqlalchemy.exc import OperationalError

from ..extensions import db
from ..jobs import handler
from . import service
from .models import IntegrationImport

log = logging.getLogger("app.integrations")
CHUNK_RETRIES = 3


@handler("integrations.import")
def run_import(import_id: str) -> None:
    """Record every row of an import; a re-run continues after the last committed chunk."""
    imp = db.session.get(IntegrationImport, import_id)
    if imp is None or imp.status in ("done", "failed"):
        return
    try:
        rows = service.csv_rows(imp.csv_text)
        while _chunk_with_retries(import_id, rows):
            pass
    except Exception:
        db.session.rollback()
        service.fail_import(import_id)
        db.session.commit()
        raise


def _chunk_with_retries(import_id: str, rows: list) -> bool:
    """One chunk in its own transaction; a deadlock with a concurrent writer is retried."""
    for attempt in range(1, CHUNK_RETRIES + 1):
        try:
            more = service.process_import_chunk(import_id, rows)
            db.session.commit()
            return more
        except OperationalError as exc:
            db.session.rollback()
            text = str(exc.orig).lower()
            if attempt == CHUNK_RETRIES or not ("deadlock" in text or "could not serialize" in text):
                raise
            log.warning("import %s: chunk hit a write conflict, retrying (%d)", import_id, attempt)
    return False
