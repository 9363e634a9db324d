"""Registered integrations and their CSV imports."""
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..columns import UTCDateTime, new_id, utcnow
from ..extensions import db

KINDS = ("device", "transit_operator", "partner")
SOURCES = ("device", "import")
DEFAULT_SOURCE = {"device": "device", "transit_operator": "import", "partner": "import"}
IMPORT_STATES = ("queued", "running", "done", "failed")
# How long a replaced secret keeps verifying signatures after a rotation, by default and at most.
ROTATION_OVERLAP_SECONDS = 86400
MAX_ROTATION_OVERLAP_SECONDS = 7 * 86400


class Integration(db.Model):
    """A device fleet, transit operator or partner that pushes signed action records.

    Its id is the key id sent as X-Integration-Id. The shared secret is random,
    stored encrypted under the data keys (app/keyring.py). After a rotation the
    previous secret keeps verifying signatures until `previous_secret_expires_at`.
    """

    __tablename__ = "integrations"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(10))
    secret_encrypted: Mapped[str] = mapped_column(String(255))
    previous_secret_encrypted: Mapped[str | None] = mapped_column(String(255))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Not stored: the secret, set only on the reply that shows it once.
    shown_secret = None


class IntegrationImport(db.Model):
    """An operator's CSV file, kept in the database so that any worker can process it."""

    __tablename__ = "integration_imports"
    __table_args__ = (Index("ix_integration_imports_integration_created", "integration_id", "created_at"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id"))
    status: Mapped[str] = mapped_column(String(10), default="queued")
    csv_text: Mapped[str] = mapped_column(Text)
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    processed_rows: Mapped[int] = mapped_column(Integer, default=0)
    created_count: Mapped[int] = mapped_column(Integer, default=0)
    duplicate_count: Mapped[int] = mapped_column(Integer, default=0)
    rejected_count: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    row_errors: Mapped[list["ImportRowError"]] = relationship(viewonly=True, order_by="ImportRowError.line")

    @property
    def progress(self) -> int:
        """Percent of the rows processed, 0 to 100."""
        if self.status == "done" or not self.total_rows:
            return 100
        return self.processed_rows * 100 // self.total_rows


class ImportRowError(db.Model):
    """Why one CSV row of an import was rejected; `line` is its line in the file (header = 1)."""

    __tablename__ = "integration_import_errors"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    import_id: Mapped[str] = mapped_column(ForeignKey("integration_imports.id"), index=True)
    line: Mapped[int] = mapped_column(Integer)
    external_id: Mapped[str | None] = mapped_column(String(128))
    errors: Mapped[str] = mapped_column(Text)  # JSON {field: [messages]}
