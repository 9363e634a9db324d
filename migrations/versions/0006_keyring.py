"""keyring: integration secrets and redemption-code digits encrypted under DATA_KEYS; seen signatures

Integration secrets were derived from SECRET_KEY and `secret_salt`, and a code's digits were masked
with a SECRET_KEY keystream. The upgrade computes both exactly as the code did, with the SECRET_KEY
of the environment it runs in, and stores them encrypted under the active data key: every device
keeps its secret and every code its digits. Run it with the SECRET_KEY the service has been using,
or, where that was the built-in development value (which production now refuses), with it in
LEGACY_SECRET_KEY and a new random SECRET_KEY.

The downgrade puts the codes' digits back under the SECRET_KEY keystream, but cannot put a random
secret back behind a salt: every integration gets a new salt, so a new secret (`integrations list`
then a new secret per device).

Revision ID: 0006_keyring
Revises: 0005_shared_limits
Create Date: 2026-12-08 10:00:00.000000

"""
import hashlib
import hmac
import logging
import os
import secrets

import sqlalchemy as sa
from alembic import op
from flask import current_app

import app.columns
from app import keyring

# revision identifiers, used by Alembic.
revision = '0006_keyring'
down_revision = '0005_shared_limits'
branch_labels = None
depends_on = None

log = logging.getLogger('alembic.runtime.migration')

CODE_DIGITS = 20
CHUNK = 1000

integrations = sa.table('integrations', sa.column('id', sa.String), sa.column('secret_salt', sa.String),
                        sa.column('secret_encrypted', sa.String))
codes = sa.table('redemption_codes', sa.column('id', sa.String), sa.column('code_sealed', sa.String),
                 sa.column('code_encrypted', sa.String))


def _old_secret_key():
    """The SECRET_KEY the service ran on before this revision."""
    return os.environ.get('LEGACY_SECRET_KEY') or current_app.config['SECRET_KEY']


def _derived_secret(integration_id, salt):
    """What integrations.service.secret_of returned before this revision."""
    key = hmac.new(_old_secret_key().encode(), b'songjiang-carbon/integration-secret/v1',
                   hashlib.sha256).digest()
    return hmac.new(key, f'{integration_id}\x1f{salt}'.encode(), hashlib.sha256).hexdigest()


def _keystream(code_id):
    """The mask rewards.service sealed a code's digits with before this revision."""
    mac = hmac.new(_old_secret_key().encode(), f'redemption-code:{code_id}'.encode(), hashlib.sha256)
    return int.from_bytes(mac.digest(), 'big') % 10**CODE_DIGITS


def _sqlite():
    return op.get_bind().dialect.name == 'sqlite'


def _add_filled_column(table, name, type_, source, convert):
    """Add a NOT NULL column, filled from `source` of each row by convert(id, value), CHUNK rows at a time.

    SQLite can make a column NOT NULL only by rebuilding the table, and dropping the old table fails
    on the rows that reference it (PRAGMA foreign_keys cannot change inside the migration's
    transaction); there the column is added NOT NULL with an empty default, which the fill replaces.
    """
    connection = op.get_bind()
    target = sa.column(name, type_)
    if _sqlite():
        op.add_column(table.name, sa.Column(name, type_, nullable=False, server_default=sa.text("''")))
        pending = target == ''
    else:
        op.add_column(table.name, sa.Column(name, type_, nullable=True))
        pending = target.is_(None)
    count = 0
    while True:
        rows = connection.execute(sa.select(table.c.id, source).where(pending)
                                  .order_by(table.c.id).limit(CHUNK)).all()
        if not rows:
            break
        connection.execute(sa.text(f'UPDATE {table.name} SET {name} = :value WHERE id = :row_id'),
                           [{'row_id': row_id, 'value': convert(row_id, value)} for row_id, value in rows])
        count += len(rows)
    if not _sqlite():
        op.alter_column(table.name, name, existing_type=type_, nullable=False)
    return count


def _drop_column(table_name, name):
    if _sqlite():  # natively (SQLite 3.35+): no rebuild, see _add_filled_column
        op.execute(f'ALTER TABLE {table_name} DROP COLUMN {name}')
    else:
        op.drop_column(table_name, name)


def upgrade():
    ring = keyring.keyring()
    op.create_table('seen_signatures',
    sa.Column('signature', sa.String(length=64), nullable=False),
    sa.Column('expires_at', app.columns.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('signature', name=op.f('pk_seen_signatures'))
    )
    with op.batch_alter_table('seen_signatures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_seen_signatures_expires_at'), ['expires_at'], unique=False)

    op.add_column('integrations', sa.Column('previous_secret_encrypted', sa.String(length=255), nullable=True))
    op.add_column('integrations', sa.Column('previous_secret_expires_at', app.columns.UTCDateTime(), nullable=True))
    moved = _add_filled_column(
        integrations, 'secret_encrypted', sa.String(length=255), integrations.c.secret_salt,
        lambda row_id, salt: ring.encrypt(_derived_secret(row_id, salt), f'integration-secret:{row_id}'))
    _drop_column('integrations', 'secret_salt')

    sealed = _add_filled_column(
        codes, 'code_encrypted', sa.String(length=255), codes.c.code_sealed,
        lambda row_id, masked: ring.encrypt(str((int(masked) - _keystream(row_id)) % 10**CODE_DIGITS).zfill(CODE_DIGITS),
                                            f'redemption-code:{row_id}'))
    _drop_column('redemption_codes', 'code_sealed')
    if moved or sealed:
        log.info('encrypted under data key %s: %d integration secret(s), %d redemption code(s)',
                 ring.active_id, moved, sealed)


def downgrade():
    ring = keyring.keyring()
    _add_filled_column(
        codes, 'code_sealed', sa.String(length=20), codes.c.code_encrypted,
        lambda row_id, token: str((int(ring.decrypt(token, f'redemption-code:{row_id}')) + _keystream(row_id))
                                  % 10**CODE_DIGITS).zfill(CODE_DIGITS))
    _drop_column('redemption_codes', 'code_encrypted')

    renewed = _add_filled_column(integrations, 'secret_salt', sa.String(length=64),
                                 integrations.c.secret_encrypted, lambda row_id, token: secrets.token_hex(32))
    for name in ('secret_encrypted', 'previous_secret_expires_at', 'previous_secret_encrypted'):
        _drop_column('integrations', name)
    if renewed:
        log.warning('%d integration(s) have a new secret now: their devices\' signatures no longer verify', renewed)

    with op.batch_alter_table('seen_signatures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_seen_signatures_expires_at'))

    op.drop_table('seen_signatures')
