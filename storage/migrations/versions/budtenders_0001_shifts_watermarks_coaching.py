"""budtenders: shifts, watermarks, coaching messages (the trigger history and A/B record)

Revision ID: budtenders_0001
Revises: core_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "budtenders_0001"
down_revision = "core_0001"
branch_labels = ("budtenders",)
depends_on = None


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _money(name: str) -> sa.Column:
    # Money is NUMERIC(14,2) on PostgreSQL and a decimal string on SQLite (see storage/types.py).
    return sa.Column(name, sa.Numeric(14, 2).with_variant(sa.String(32), "sqlite"), nullable=False, server_default="0")


def upgrade() -> None:
    op.create_table(
        "budtender_shifts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="CASCADE"), nullable=False),
        sa.Column("store_code", sa.String(64), nullable=True),
        _ts("starts_at", False),
        _ts("ends_at", False),
        sa.Column("source", sa.String(16), nullable=False, server_default="config"),
        _ts("muted_until"),
        _ts("created_at", False),
        sa.UniqueConstraint("person_id", "starts_at", name="uq_budtender_shifts_person_id_starts_at"),
    )
    op.create_index("ix_budtender_shifts_ends_at", "budtender_shifts", ["ends_at"])
    op.create_table(
        "budtender_watermarks",
        sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("days", sa.Integer, nullable=False, server_default="0"),
        _money("avg_ticket"),
        _money("avg_day_sales"),
        _money("avg_signups"),
        _money("avg_upsell_rate"),
        _money("avg_house_share"),
        _money("best_day_sales"),
        _money("best_avg_ticket"),
        sa.Column("best_signups", sa.Integer, nullable=False, server_default="0"),
        _ts("computed_at", False),
    )
    op.create_table(
        "budtender_coaching",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="CASCADE"), nullable=False),
        sa.Column("shift_id", sa.Integer, sa.ForeignKey("budtender_shifts.id", ondelete="SET NULL"), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("variant", sa.String(8), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("orders", sa.Integer, nullable=False, server_default="0"),
        _ts("sent_at", False),
        _ts("answered_at"),
        sa.UniqueConstraint("key", name="uq_budtender_coaching_key"),
    )
    op.create_index("ix_budtender_coaching_person_sent", "budtender_coaching", ["person_id", "sent_at"])


def downgrade() -> None:
    op.drop_table("budtender_coaching")
    op.drop_table("budtender_watermarks")
    op.drop_index("ix_budtender_shifts_ends_at", table_name="budtender_shifts")
    op.drop_table("budtender_shifts")
