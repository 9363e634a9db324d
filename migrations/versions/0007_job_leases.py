"""job leases: a running job's lease and its claim count, so a sweep can retry a job whose worker died

Revision ID: 0007_job_leases
Revises: 0006_keyring
Create Date: 2026-12-08 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

import app.columns


# revision identifiers, used by Alembic.
revision = '0007_job_leases'
down_revision = '0006_keyring'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempts', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('lease_until', app.columns.UTCDateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('lease_until')
        batch_op.drop_column('attempts')
