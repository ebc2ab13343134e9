"""sms: multipart reassembly parts and per-part send progress

Revision ID: sms_0001
Revises: core_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "sms_0001"
down_revision = "core_0001"
branch_labels = ("sms",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sms_parts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sender", sa.String(64), nullable=False),
        sa.Column("reference", sa.Integer, nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("part", sa.Integer, nullable=False),
        sa.Column("pdu", sa.Text, nullable=False),
        sa.Column("slot", sa.Integer, nullable=True),
        sa.Column("storage", sa.String(8), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("sender", "reference", "total", "part", name="uq_sms_parts_sender"),
    )
    op.create_index("ix_sms_parts_received_at", "sms_parts", ["received_at"])
    op.create_table(
        "sms_sent_parts",
        sa.Column("outbox_id", sa.Integer, primary_key=True),
        sa.Column("part", sa.Integer, primary_key=True),
        sa.Column("message_ref", sa.Integer, nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_sms_sent_parts_sent_at", "sms_sent_parts", ["sent_at"])


def downgrade() -> None:
    op.drop_table("sms_sent_parts")
    op.drop_table("sms_parts")
