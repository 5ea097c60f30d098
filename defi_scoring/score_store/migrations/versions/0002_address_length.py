"""Wallet columns unbounded (Text): a failure record keeps the raw `wallet_address` of the input, which
may be any string; VARCHAR(64) made PostgreSQL refuse a whole batch over one long address.

PostgreSQL changes the type in place (varchar to text rewrites neither table nor index); SQLite cannot
alter a column, so each table is copied (batch mode) — once, inside the upgrade's transaction.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

WALLET_COLUMNS = ("wallet_histories", "wallet_scores", "score_events")


def upgrade() -> None:
    for table in WALLET_COLUMNS:
        with op.batch_alter_table(table) as batch:
            batch.alter_column("wallet", type_=sa.Text(), existing_type=sa.String(64), existing_nullable=False)


def downgrade() -> None:
    for table in WALLET_COLUMNS:
        with op.batch_alter_table(table) as batch:
            batch.alter_column("wallet", type_=sa.String(64), existing_type=sa.Text(), existing_nullable=False)
