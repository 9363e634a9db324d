"""campaign holdings: what each household holds of a campaign's action parts, kept with every award, so
the household cap is checked against one row instead of a sum over the household's awards; filled from
the awards

Revision ID: 0010_campaign_holdings
Revises: 0009_household_reductions
Create Date: 2026-12-10 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010_campaign_holdings'
down_revision = '0009_household_reductions'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('campaign_holdings',
    sa.Column('campaign_id', sa.String(length=32), nullable=False),
    sa.Column('household_id', sa.String(length=32), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_holdings_campaign_id_campaigns')),
    sa.ForeignKeyConstraint(['household_id'], ['households.id'], name=op.f('fk_campaign_holdings_household_id_households')),
    sa.PrimaryKeyConstraint('campaign_id', 'household_id', name=op.f('pk_campaign_holdings'))
    )
    # As campaigns.service.held_points counts them: "action" awards net of "reversal" ones (a pair that
    # comes to 0 needs no row).
    op.execute("INSERT INTO campaign_holdings (campaign_id, household_id, points) "
               "SELECT campaign_id, household_id, SUM(points) FROM campaign_awards "
               "WHERE kind IN ('action', 'reversal') GROUP BY campaign_id, household_id HAVING SUM(points) <> 0")


def downgrade():
    op.drop_table('campaign_holdings')
