"""household reductions: each household-month rollup row also adds up the grams its actions reduced
(and the verified part), so a wallet's reduction totals are read from a few rows a month, not from every
action; filled from the approved actions

Revision ID: 0009_household_reductions
Revises: 0008_account_totals
Create Date: 2026-12-09 11:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009_household_reductions'
down_revision = '0008_account_totals'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('district_household_months',
                  sa.Column('reduction_g', sa.BigInteger(), server_default='0', nullable=False))
    op.add_column('district_household_months',
                  sa.Column('verified_reduction_g', sa.BigInteger(), server_default='0', nullable=False))
    op.create_index('ix_district_household_months_household', 'district_household_months', ['household_id'],
                    unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        month = "to_char(a.occurred_at + interval '8 hours', 'YYYY-MM')"
    else:
        month = "strftime('%Y-%m', a.occurred_at, '+8 hours')"

    # The rows' keys are those the rollups keep (rollups.rebuild): approved actions by Asia/Shanghai month.
    def grams(verified_only):
        return f"""COALESCE((SELECT SUM(a.reduction_g) FROM actions a
                   WHERE a.status = 'approved' {'AND a.verified' if verified_only else ''}
                     AND a.household_id = m.household_id AND a.community_id = m.community_id
                     AND a.action_type = m.action_type AND {month} = m.month), 0)"""

    op.execute(f"UPDATE district_household_months AS m SET reduction_g = {grams(False)}, "
               f"verified_reduction_g = {grams(True)}")


def downgrade():
    op.drop_index('ix_district_household_months_household', table_name='district_household_months')
    if op.get_bind().dialect.name == 'sqlite':
        op.execute('ALTER TABLE district_household_months DROP COLUMN verified_reduction_g')
        op.execute('ALTER TABLE district_household_months DROP COLUMN reduction_g')
    else:
        op.drop_column('district_household_months', 'verified_reduction_g')
        op.drop_column('district_household_months', 'reduction_g')
