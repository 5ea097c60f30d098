"""Baseline: the four tables exactly as releases before migrations created them (metadata.create_all),
wallet columns String(64). A store made by such a release is stamped at this revision, not re-created.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wallet_histories",
        sa.Column("wallet", sa.String(64), primary_key=True),
        sa.Column("transactions", sa.Integer, nullable=False),
        sa.Column("columns", sa.LargeBinary, nullable=False),
        sa.Column("writer", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.Float),
    )
    op.create_table(
        "wallet_scores",
        sa.Column("wallet", sa.String(64), primary_key=True),
        sa.Column("zscore", sa.Float),
        sa.Column("hybrid_score", sa.Float),
        sa.Column("confidence", sa.Float),
        sa.Column("risk_level", sa.String(32)),
        sa.Column("model_version", sa.String(32)),
        sa.Column("run_id", sa.String(128)),
        sa.Column("scored_at", sa.BigInteger),
        sa.Column("message", sa.Text, nullable=False),
    )
    op.create_table(
        "score_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("wallet", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(128)),
        sa.Column("source", sa.String(16)),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("model_version", sa.String(32)),
        sa.Column("zscore", sa.Float),
        sa.Column("hybrid_score", sa.Float),
        sa.Column("risk_level", sa.String(32)),
        sa.Column("error", sa.Text),
        sa.Column("processing_time_ms", sa.Integer),
        sa.Column("scored_at", sa.BigInteger),
        sa.Column("recorded_at", sa.Float),
    )
    op.create_index("ix_score_events_wallet", "score_events", ["wallet"])
    op.create_index("ix_score_events_scored_at", "score_events", ["scored_at"])
    op.create_table(
        "processed_ranges",
        sa.Column("range_key", sa.String(), primary_key=True),
        sa.Column("outputs", sa.LargeBinary, nullable=False),
        sa.Column("recorded_at", sa.Float),
    )


def downgrade() -> None:
    for table in ("processed_ranges", "score_events", "wallet_scores", "wallet_histories"):
        op.drop_table(table)
