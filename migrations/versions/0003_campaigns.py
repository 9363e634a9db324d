"""campaigns: campaigns, their communities and action types, check-in codes, check-ins, awards

Revision ID: 0003_campaigns
Revises: 0002_roles
Create Date: 2026-12-01 11:11:49.284161

"""
from alembic import op
import sqlalchemy as sa

import app.columns


# revision identifiers, used by Alembic.
revision = '0003_campaigns'
down_revision = '0002_roles'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('campaigns',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('starts_at', app.columns.UTCDateTime(), nullable=False),
    sa.Column('ends_at', app.columns.UTCDateTime(), nullable=False),
    sa.Column('multiplier', app.columns.Dec(precision=8, scale=3), nullable=False),
    sa.Column('bonus_points', sa.BigInteger(), nullable=False),
    sa.Column('budget_points', sa.BigInteger(), nullable=False),
    sa.Column('per_household_cap', sa.BigInteger(), nullable=True),
    sa.Column('created_by', sa.String(length=32), nullable=True),
    sa.Column('created_at', app.columns.UTCDateTime(), nullable=False),
    sa.Column('updated_at', app.columns.UTCDateTime(), nullable=True),
    sa.Column('activated_by', sa.String(length=32), nullable=True),
    sa.Column('activated_at', app.columns.UTCDateTime(), nullable=True),
    sa.Column('ended_by', sa.String(length=32), nullable=True),
    sa.Column('ended_at', app.columns.UTCDateTime(), nullable=True),
    sa.CheckConstraint("status IN ('draft', 'active', 'ended')", name=op.f('ck_campaigns_status_known')),
    sa.CheckConstraint('bonus_points >= 0', name=op.f('ck_campaigns_bonus_not_negative')),
    sa.CheckConstraint('budget_points > 0', name=op.f('ck_campaigns_budget_positive')),
    sa.CheckConstraint('ends_at > starts_at', name=op.f('ck_campaigns_window_not_empty')),
    sa.CheckConstraint('per_household_cap IS NULL OR per_household_cap > 0', name=op.f('ck_campaigns_cap_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns'))
    )
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.create_index('ix_campaigns_created', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_campaigns_status_ends', ['status', 'ends_at'], unique=False)

    op.create_table('campaign_action_types',
    sa.Column('campaign_id', sa.String(length=32), nullable=False),
    sa.Column('action_type', sa.String(length=40), nullable=False),
    sa.Column('variant', sa.String(length=40), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_action_types_campaign_id_campaigns')),
    sa.PrimaryKeyConstraint('campaign_id', 'action_type', 'variant', name=op.f('pk_campaign_action_types'))
    )
    op.create_table('campaign_checkin_codes',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('campaign_id', sa.String(length=32), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('salt', sa.String(length=32), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', app.columns.UTCDateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=32), nullable=True),
    sa.Column('created_at', app.columns.UTCDateTime(), nullable=False),
    sa.CheckConstraint('points > 0', name=op.f('ck_campaign_checkin_codes_points_positive')),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_checkin_codes_campaign_id_campaigns')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_checkin_codes')),
    sa.UniqueConstraint('code_hash', name=op.f('uq_campaign_checkin_codes_code_hash'))
    )
    with op.batch_alter_table('campaign_checkin_codes', schema=None) as batch_op:
        batch_op.create_index('ix_campaign_checkin_codes_campaign_created', ['campaign_id', 'created_at', 'id'], unique=False)

    op.create_table('campaign_communities',
    sa.Column('campaign_id', sa.String(length=32), nullable=False),
    sa.Column('community_id', sa.String(length=32), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_communities_campaign_id_campaigns')),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_campaign_communities_community_id_communities')),
    sa.PrimaryKeyConstraint('campaign_id', 'community_id', name=op.f('pk_campaign_communities'))
    )
    with op.batch_alter_table('campaign_communities', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_campaign_communities_community_id'), ['community_id'], unique=False)

    op.create_table('campaign_checkins',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('code_id', sa.String(length=32), nullable=False),
    sa.Column('campaign_id', sa.String(length=32), nullable=False),
    sa.Column('household_id', sa.String(length=32), nullable=False),
    sa.Column('resident_id', sa.String(length=32), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('created_at', app.columns.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_checkins_campaign_id_campaigns')),
    sa.ForeignKeyConstraint(['code_id'], ['campaign_checkin_codes.id'], name=op.f('fk_campaign_checkins_code_id_campaign_checkin_codes')),
    sa.ForeignKeyConstraint(['household_id'], ['households.id'], name=op.f('fk_campaign_checkins_household_id_households')),
    sa.ForeignKeyConstraint(['resident_id'], ['users.id'], name=op.f('fk_campaign_checkins_resident_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_checkins')),
    sa.UniqueConstraint('code_id', 'household_id', name=op.f('uq_campaign_checkins_code_id_household_id'))
    )
    with op.batch_alter_table('campaign_checkins', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_campaign_checkins_campaign_id'), ['campaign_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_campaign_checkins_household_id'), ['household_id'], unique=False)

    op.create_table('campaign_awards',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('campaign_id', sa.String(length=32), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('household_id', sa.String(length=32), nullable=False),
    sa.Column('action_id', sa.String(length=32), nullable=True),
    sa.Column('checkin_id', sa.String(length=32), nullable=True),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('uncut_points', sa.BigInteger(), nullable=False),
    sa.Column('cut', sa.String(length=20), nullable=True),
    sa.Column('created_at', app.columns.UTCDateTime(), nullable=False),
    sa.CheckConstraint("kind IN ('action', 'checkin', 'reversal')", name=op.f('ck_campaign_awards_kind_known')),
    sa.ForeignKeyConstraint(['action_id'], ['actions.id'], name=op.f('fk_campaign_awards_action_id_actions')),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_awards_campaign_id_campaigns')),
    sa.ForeignKeyConstraint(['checkin_id'], ['campaign_checkins.id'], name=op.f('fk_campaign_awards_checkin_id_campaign_checkins')),
    sa.ForeignKeyConstraint(['household_id'], ['households.id'], name=op.f('fk_campaign_awards_household_id_households')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_awards')),
    sa.UniqueConstraint('campaign_id', 'action_id', 'kind', name=op.f('uq_campaign_awards_campaign_id_action_id_kind')),
    sa.UniqueConstraint('campaign_id', 'seq', name=op.f('uq_campaign_awards_campaign_id_seq'))
    )
    with op.batch_alter_table('campaign_awards', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_campaign_awards_action_id'), ['action_id'], unique=False)
        batch_op.create_index('ix_campaign_awards_campaign_household', ['campaign_id', 'household_id'], unique=False)



def downgrade():
    with op.batch_alter_table('campaign_awards', schema=None) as batch_op:
        batch_op.drop_index('ix_campaign_awards_campaign_household')
        batch_op.drop_index(batch_op.f('ix_campaign_awards_action_id'))

    op.drop_table('campaign_awards')
    with op.batch_alter_table('campaign_checkins', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_campaign_checkins_household_id'))
        batch_op.drop_index(batch_op.f('ix_campaign_checkins_campaign_id'))

    op.drop_table('campaign_checkins')
    with op.batch_alter_table('campaign_communities', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_campaign_communities_community_id'))

    op.drop_table('campaign_communities')
    with op.batch_alter_table('campaign_checkin_codes', schema=None) as batch_op:
        batch_op.drop_index('ix_campaign_checkin_codes_campaign_created')

    op.drop_table('campaign_checkin_codes')
    op.drop_table('campaign_action_types')
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_index('ix_campaigns_status_ends')
        batch_op.drop_index('ix_campaigns_created')

    op.drop_table('campaigns')
