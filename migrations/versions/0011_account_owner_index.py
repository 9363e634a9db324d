"""ledger accounts: (kind, owner_id, shard) indexed, no longer a second unique key beside the id

An account's id is a hash of (kind, owner_id, shard) (ledger.service.account_id), so the primary key
already allows one row per owner and shard. The second unique index made PostgreSQL deadlock two
transactions creating the same account at once (a new issuance shard, a new wallet): the one whose
INSERT … ON CONFLICT (id) had reached that index waited for the other's transaction while holding
its speculative insertion, which the other was waiting on. With the id the only unique key, the
second upsert waits for the first and then locks its row.

Revision ID: 0011_account_owner_index
Revises: 0010_campaign_holdings
Create Date: 2026-12-11 10:00:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0011_account_owner_index'
down_revision = '0010_campaign_holdings'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('ledger_accounts', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_ledger_accounts_kind_owner_id_shard'), type_='unique')
        batch_op.create_index(batch_op.f('ix_ledger_accounts_kind_owner_id_shard'), ['kind', 'owner_id', 'shard'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('ledger_accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_accounts_kind_owner_id_shard'))
        batch_op.create_unique_constraint(batch_op.f('uq_ledger_accounts_kind_owner_id_shard'),
                                          ['kind', 'owner_id', 'shard'])
