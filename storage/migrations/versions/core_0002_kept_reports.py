"""core: delivery reports that matched no receipt yet, kept until one does

Revision ID: core_0002
Revises: core_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "core_0002"
down_revision = "core_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox_kept_reports",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("provider_id", sa.String(200), nullable=False),
        sa.Column("address", sa.String(200), nullable=True),
        sa.Column("delivered", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_outbox_kept_reports_lookup", "outbox_kept_reports", ["channel", "provider_id"])


def downgrade() -> None:
    op.drop_table("outbox_kept_reports")
