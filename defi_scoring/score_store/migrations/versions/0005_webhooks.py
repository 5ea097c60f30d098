"""Watchlists and signed webhooks: subscribers (API key hashes), subscriptions, watched wallets and the
delivery outbox (issue 35, docs/webhooks.md). New tables only.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_subscribers",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_webhook_subscribers_key_hash", "webhook_subscribers", ["key_hash"], unique=True)
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("subscriber", sa.String(40)),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("events", sa.Text, nullable=False),
        sa.Column("threshold", sa.Float),
        sa.Column("min_change", sa.Float),
        sa.Column("description", sa.Text),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.Text),
        sa.Column("dead_streak", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_webhook_subscriptions_subscriber", "webhook_subscriptions", ["subscriber"])
    op.create_table(
        "webhook_watched",
        sa.Column("subscription_id", sa.String(40), primary_key=True),
        sa.Column("wallet", sa.Text, primary_key=True),
        sa.Column("added_at", sa.Float, nullable=False),
    )
    op.create_index("ix_webhook_watched_wallet", "webhook_watched", ["wallet"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("subscription_id", sa.String(40), nullable=False),
        sa.Column("wallet", sa.Text, nullable=False),
        sa.Column("type", sa.String(24), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("retry_from", sa.Float, nullable=False),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("last_attempt_at", sa.Float),
        sa.Column("last_status", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.Column("delivered_at", sa.Float),
    )
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"])
    op.create_index(
        "ix_webhook_deliveries_subscription", "webhook_deliveries", ["subscription_id", "status", "created_at"]
    )


def downgrade() -> None:
    for table in ("webhook_deliveries", "webhook_watched", "webhook_subscriptions", "webhook_subscribers"):
        op.drop_table(table)  # its indexes go with it
