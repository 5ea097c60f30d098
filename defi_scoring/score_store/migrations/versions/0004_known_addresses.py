"""Counterparty exposure: the known-address lists (one row per address, source and category; removals
marked) and the counterparty index (distinct wallet–counterparty pairs of the stored histories). New
tables only. An upgraded store starts with an empty index: it fills as histories are appended, so
wallets stored before this revision are screened directly on their next scoring, and reached by
re-screening or indirect exposure once their history grows (or after `update_counterparty_index`
over the stored histories).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "known_addresses",
        sa.Column("address", sa.Text, primary_key=True),
        sa.Column("source", sa.Text, primary_key=True),
        sa.Column("category", sa.Text, primary_key=True),
        sa.Column("label", sa.Text),
        sa.Column("listed_at", sa.BigInteger),
        sa.Column("removed", sa.Boolean, nullable=False),
        sa.Column("imported_at", sa.Float, nullable=False),
    )
    op.create_table(
        "counterparty_index",
        sa.Column("wallet", sa.Text, primary_key=True),
        sa.Column("counterparty", sa.Text, primary_key=True),
    )
    op.create_index("ix_counterparty_index_counterparty", "counterparty_index", ["counterparty"])


def downgrade() -> None:
    op.drop_table("counterparty_index")  # its index goes with it
    op.drop_table("known_addresses")
