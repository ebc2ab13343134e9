"""sms: raw PDUs that are not texts (or were read leniently), kept before their slot is freed

Revision ID: sms_0002
Revises: sms_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "sms_0002"
down_revision = "sms_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sms_held",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("pdu", sa.Text, nullable=False),
        sa.Column("slot", sa.Integer, nullable=True),
        sa.Column("storage", sa.String(8), nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("sender", sa.String(64), nullable=True),
        sa.Column("text", sa.Text, nullable=True),
        sa.Column("provider_id", sa.String(200), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("digest", name="uq_sms_held_digest"),
    )
    op.create_index("ix_sms_held_received_at", "sms_held", ["received_at"])


def downgrade() -> None:
    op.drop_table("sms_held")
