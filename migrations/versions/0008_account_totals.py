"""account totals: each ledger account caches the sum of its earning entries and minus the sum of its
redeeming ones, as it caches its balance, so a wallet's lifetime figures are read without its history

Revision ID: 0008_account_totals
Revises: 0007_job_leases
Create Date: 2026-12-09 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008_account_totals'
down_revision = '0007_job_leases'
branch_labels = None
depends_on = None

# The kinds by meaning, as app/ledger/kinds.py has them at this revision.
EARNING = ('action', 'action_reversal', 'campaign_bonus', 'campaign_reversal', 'checkin', 'adjustment',
           'clawback_recovery')
REDEEMING = ('redemption', 'redemption_void')


def upgrade():
    # Natively on both databases (ADD and DROP COLUMN): SQLite must not rebuild a table other tables refer to.
    op.add_column('ledger_accounts', sa.Column('earned', sa.BigInteger(), server_default='0', nullable=False))
    op.add_column('ledger_accounts', sa.Column('redeemed', sa.BigInteger(), server_default='0', nullable=False))
    entries = sa.table('ledger_entries', sa.column('account_id'), sa.column('kind'), sa.column('amount'))
    accounts = sa.table('ledger_accounts', sa.column('id'), sa.column('earned'), sa.column('redeemed'))

    def total(kinds, sign):
        return sa.func.coalesce(
            sa.select(sa.func.sum(entries.c.amount) * sign)
            .where(entries.c.account_id == accounts.c.id, entries.c.kind.in_(kinds))
            .scalar_subquery(), 0)

    op.execute(accounts.update().values(earned=total(EARNING, 1), redeemed=total(REDEEMING, -1)))


def downgrade():
    if op.get_bind().dialect.name == 'sqlite':
        op.execute('ALTER TABLE ledger_accounts DROP COLUMN redeemed')
        op.execute('ALTER TABLE ledger_accounts DROP COLUMN earned')
    else:
        op.drop_column('ledger_accounts', 'redeemed')
        op.drop_column('ledger_accounts', 'earned')
