"""roles: anomaly flags can be resolved; household-ordered indexes for codes and redemptions

Revision ID: 0002_roles
Revises: 0001_initial
Create Date: 2026-12-01 11:06:51.898701

"""
from alembic import op
import sqlalchemy as sa

import app.columns

# revision identifiers, used by Alembic.
revision = '0002_roles'
down_revision = '0001_initial'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('anomaly_flags', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resolved_at', app.columns.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('resolved_by', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('resolution_note', sa.String(length=500), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_anomaly_flags_resolved_by_users'), 'users', ['resolved_by'], ['id'])

    with op.batch_alter_table('redemption_codes', schema=None) as batch_op:
        batch_op.create_index('ix_redemption_codes_household_created', ['household_id', 'created_at', 'id'], unique=False)

    with op.batch_alter_table('redemptions', schema=None) as batch_op:
        batch_op.create_index('ix_redemptions_household_created', ['household_id', 'created_at', 'id'], unique=False)


def downgrade():
    with op.batch_alter_table('redemptions', schema=None) as batch_op:
        batch_op.drop_index('ix_redemptions_household_created')

    with op.batch_alter_table('redemption_codes', schema=None) as batch_op:
        batch_op.drop_index('ix_redemption_codes_household_created')

    with op.batch_alter_table('anomaly_flags', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_anomaly_flags_resolved_by_users'), type_='foreignkey')
        batch_op.drop_column('resolution_note')
        batch_op.drop_column('resolved_by')
        batch_op.drop_column('resolved_at')

