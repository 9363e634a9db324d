"""keyring: integration secrets and redemption-code digits encrypted under DATA_KEYS; seen signatures

Integration secrets were derived from SECRET_KEY and `secret_salt`, and a code's digits were masked
with a SECRET_KEY keystream. The upgrade computes both exactly as the code did, with the SECRET_KEY
of the environment it runs in, and stores them encrypted under the active data key: every device
keeps its secret and every code its digits. Run it with the SECRET_KEY the service has been using.

The downgrade puts the codes' digits back under the SECRET_KEY keystream, but cannot put a random
secret back behind a salt: every integration gets a new salt, so a new secret (`integrations list`
then a new secret per device).

Revision ID: 0005_keyring
Revises: 0004_district
Create Date: 2026-12-08 10:00:00.000000

"""
import hashlib
import hmac
import logging
import secrets

import sqlalchemy as sa
from alembic import op
from flask import current_app

import app.columns
from app import keyring

# revision identifiers, used by Alembic.
revision = '0005_keyring'
down_revision = '0004_district'
branch_labels = None
depends_on = None

log = logging.getLogger('alembic.runtime.migration')

CODE_DIGITS = 20
CHUNK = 1000

integrations = sa.table('integrations', sa.column('id', sa.String), sa.column('secret_salt', sa.String),
                        sa.column('secret_encrypted', sa.String))
codes = sa.table('redemption_codes', sa.column('id', sa.String), sa.column('code_sealed', sa.String),
                 sa.column('code_encrypted', sa.String))


def _derived_secret(integration_id, salt):
    """What integrations.service.secret_of returned before this revision."""
    key = hmac.new(current_app.config['SECRET_KEY'].encode(), b'songjiang-carbon/integration-secret/v1',
                   hashlib.sha256).digest()
    return hmac.new(key, f'{integration_id}\x1f{salt}'.encode(), hashlib.sha256).hexdigest()


def _keystream(code_id):
    """The mask rewards.service sealed a code's digits with before this revision."""
    mac = hmac.new(current_app.config['SECRET_KEY'].encode(), f'redemption-code:{code_id}'.encode(), hashlib.sha256)
    return int.from_bytes(mac.digest(), 'big') % 10**CODE_DIGITS


def _in_chunks(table, pending, convert, target):
    """Fill `target` from each row where it is NULL, CHUNK rows per statement pair."""
    connection = op.get_bind()
    count = 0
    while True:
        rows = connection.execute(sa.select(table.c.id, pending).where(target.is_(None))
                                  .order_by(table.c.id).limit(CHUNK)).all()
        if not rows:
            return count
        connection.execute(table.update().where(table.c.id == sa.bindparam('row_id'))
                           .values({target.name: sa.bindparam('value')}),
                           [{'row_id': row_id, 'value': convert(row_id, value)} for row_id, value in rows])
        count += len(rows)


def upgrade():
    ring = keyring.keyring()
    op.create_table('seen_signatures',
    sa.Column('signature', sa.String(length=64), nullable=False),
    sa.Column('expires_at', app.columns.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('signature', name=op.f('pk_seen_signatures'))
    )
    with op.batch_alter_table('seen_signatures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_seen_signatures_expires_at'), ['expires_at'], unique=False)

    with op.batch_alter_table('integrations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('secret_encrypted', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('previous_secret_encrypted', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('previous_secret_expires_at', app.columns.UTCDateTime(), nullable=True))
    moved = _in_chunks(integrations, integrations.c.secret_salt,
                       lambda row_id, salt: ring.encrypt(_derived_secret(row_id, salt), f'integration-secret:{row_id}'),
                       integrations.c.secret_encrypted)
    with op.batch_alter_table('integrations', schema=None) as batch_op:
        batch_op.alter_column('secret_encrypted', existing_type=sa.String(length=255), nullable=False)
        batch_op.drop_column('secret_salt')

    with op.batch_alter_table('redemption_codes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('code_encrypted', sa.String(length=255), nullable=True))
    sealed = _in_chunks(codes, codes.c.code_sealed,
                        lambda row_id, masked: ring.encrypt(
                            str((int(masked) - _keystream(row_id)) % 10**CODE_DIGITS).zfill(CODE_DIGITS),
                            f'redemption-code:{row_id}'),
                        codes.c.code_encrypted)
    with op.batch_alter_table('redemption_codes', schema=None) as batch_op:
        batch_op.alter_column('code_encrypted', existing_type=sa.String(length=255), nullable=False)
        batch_op.drop_column('code_sealed')
    if moved or sealed:
        log.info('encrypted under data key %s: %d integration secret(s), %d redemption code(s)',
                 ring.active_id, moved, sealed)


def downgrade():
    ring = keyring.keyring()
    with op.batch_alter_table('redemption_codes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('code_sealed', sa.String(length=20), nullable=True))
    _in_chunks(codes, codes.c.code_encrypted,
               lambda row_id, token: str(
                   (int(ring.decrypt(token, f'redemption-code:{row_id}')) + _keystream(row_id)) % 10**CODE_DIGITS
               ).zfill(CODE_DIGITS),
               codes.c.code_sealed)
    with op.batch_alter_table('redemption_codes', schema=None) as batch_op:
        batch_op.alter_column('code_sealed', existing_type=sa.String(length=20), nullable=False)
        batch_op.drop_column('code_encrypted')

    with op.batch_alter_table('integrations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('secret_salt', sa.String(length=64), nullable=True))
    renewed = _in_chunks(integrations, integrations.c.secret_encrypted, lambda row_id, token: secrets.token_hex(32),
                         integrations.c.secret_salt)
    with op.batch_alter_table('integrations', schema=None) as batch_op:
        batch_op.alter_column('secret_salt', existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_column('previous_secret_expires_at')
        batch_op.drop_column('previous_secret_encrypted')
        batch_op.drop_column('secret_encrypted')
    if renewed:
        log.warning('%d integration(s) have a new secret now: their devices\' signatures no longer verify', renewed)

    with op.batch_alter_table('seen_signatures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_seen_signatures_expires_at'))

    op.drop_table('seen_signatures')
