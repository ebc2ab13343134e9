"""deals: what each manager was last told about each deal, and which analyses they were sent

Revision ID: deals_0002
Revises: deals_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "deals_0002"
down_revision = "deals_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deal_watch",
        sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("deal_id", sa.BigInteger, sa.ForeignKey("deals.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("priority", sa.String(8), nullable=False),
        sa.Column("stale", sa.Boolean, nullable=False),
        sa.Column("advice", sa.String(64), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "deal_sent",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="CASCADE"), nullable=False),
        sa.Column("deal_id", sa.BigInteger, sa.ForeignKey("deals.id", ondelete="CASCADE"), nullable=False),
        sa.Column("advice", sa.String(64), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("person_id", "deal_id", "advice", name="uq_deal_sent_advice"),
    )
    op.create_index("ix_deal_sent_person_at", "deal_sent", ["person_id", "sent_at"])


def downgrade() -> None:
    op.drop_index("ix_deal_sent_person_at", table_name="deal_sent")
    op.drop_table("deal_sent")
    op.drop_table("deal_watch")
