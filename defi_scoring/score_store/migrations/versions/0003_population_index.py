"""The population index: each wallet's contribution to the cross-wallet signals (sybil fingerprints,
pump-and-dump windows, pool liquidity), so every scoring door scores against the stored population
instead of the batch at hand. New tables only: nothing existing is touched, so no batch mode on SQLite.
An upgraded store starts with an empty index; it fills as wallets' histories are appended.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "population_fingerprints",
        sa.Column("wallet", sa.Text, primary_key=True),
        sa.Column("digest", sa.BigInteger, nullable=False),
        sa.Column("length", sa.Integer, nullable=False),
        sa.Column("start", sa.BigInteger, nullable=False),
        sa.Column("peers", sa.Float, nullable=False),
        sa.Column("scored_peers", sa.Float, nullable=False),
        sa.Column("moved", sa.Boolean, nullable=False),
    )
    op.create_index("ix_population_fingerprints_group", "population_fingerprints", ["digest", "length", "start"])
    op.create_index("ix_population_fingerprints_moved", "population_fingerprints", ["moved"])
    op.create_table(
        "population_swaps",
        sa.Column("wallet", sa.Text, primary_key=True),
        sa.Column("ts_min", sa.BigInteger, nullable=False),
        sa.Column("ts_max", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_population_swaps_ts_min", "population_swaps", ["ts_min"])
    op.create_index("ix_population_swaps_ts_max", "population_swaps", ["ts_max"])
    op.create_table(
        "population_dumps",
        sa.Column("wallet", sa.Text, primary_key=True),
        sa.Column("token", sa.Text, primary_key=True),
        sa.Column("dumps", sa.Integer, nullable=False),
    )
    op.create_index("ix_population_dumps_token", "population_dumps", ["token", "dumps"])
    op.create_table(
        "population_windows",
        sa.Column("wallet", sa.Text, primary_key=True),
        sa.Column("grid", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("token", sa.Text, primary_key=True),
        sa.Column("bucket", sa.BigInteger, primary_key=True, autoincrement=False),
    )
    op.create_index("ix_population_windows_key", "population_windows", ["grid", "token", "bucket"])
    op.create_table(
        "population_liquidity",
        sa.Column("wallet", sa.Text, primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("pool", sa.BigInteger, nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("cents", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_population_liquidity_pool", "population_liquidity", ["pool", "ts", "cents"])
    op.create_table(
        "population_pool_spans",
        sa.Column("wallet", sa.Text, primary_key=True),
        sa.Column("pool", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("first_seen", sa.BigInteger, nullable=False),
        sa.Column("last_seen", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_population_pool_spans_pool", "population_pool_spans", ["pool", "first_seen", "last_seen"])


def downgrade() -> None:
    for table in (
        "population_pool_spans",
        "population_liquidity",
        "population_windows",
        "population_dumps",
        "population_swaps",
        "population_fingerprints",
    ):
        op.drop_table(table)  # its indexes go with it
