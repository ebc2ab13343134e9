"""deals: deals, deal events, owners, cached analyses, monitoring subscriptions

Revision ID: deals_0001
Revises: core_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "deals_0001"
down_revision = "core_0001"
branch_labels = ("deals",)
depends_on = None


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _money(name: str) -> sa.Column:
    # storage.types.Money: NUMERIC(14, 2) on PostgreSQL, a decimal string on SQLite
    return sa.Column(name, sa.Numeric(14, 2).with_variant(sa.String(32), "sqlite"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "deals",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("stage", sa.String(200), nullable=False, server_default=""),
        sa.Column("pipeline", sa.String(200), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        _money("budget"),
        sa.Column("currency", sa.String(8), nullable=False),
        sa.Column("owner_ref", sa.String(200), nullable=True),
        sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="SET NULL"), nullable=True),
        sa.Column("contact", sa.String(300), nullable=True),
        _ts("created_at", False),
        _ts("updated_at", False),
    )
    op.create_index("ix_deals_person_status", "deals", ["person_id", "status"])
    op.create_index("ix_deals_source_owner", "deals", ["source", "owner_ref"])
    op.create_table(
        "deal_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("deal_id", sa.BigInteger, sa.ForeignKey("deals.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        _ts("at", False),
        sa.Column("duration_s", sa.Integer, nullable=True),
        sa.Column("direction", sa.String(8), nullable=True),
        sa.Column("text", sa.Text, nullable=True),
        sa.Column("from_stage", sa.String(200), nullable=True),
        sa.Column("to_stage", sa.String(200), nullable=True),
        _ts("due_at"),
        sa.Column("done", sa.Boolean, nullable=False, server_default=sa.false()),
        _ts("done_at"),
        sa.UniqueConstraint("deal_id", "key", name="uq_deal_events_deal_id_key"),
    )
    op.create_table(
        "deal_owners",
        sa.Column("source", sa.String(32), primary_key=True),
        sa.Column("owner_ref", sa.String(200), primary_key=True),
        sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="CASCADE"), nullable=False),
    )
    op.create_table(
        "deal_analyses",
        sa.Column("deal_id", sa.BigInteger, sa.ForeignKey("deals.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("fingerprint", sa.String(64), primary_key=True),
        sa.Column("locale", sa.String(8), nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("analysis", sa.JSON, nullable=False),
        _ts("analyzed_at", False),
    )
    op.create_table(
        "deal_monitors",
        sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("interval_hours", sa.Integer, nullable=False),
        _ts("started_at", False),
        sa.Column("active", sa.Boolean, nullable=False),
        _ts("updated_at", False),
    )


def downgrade() -> None:
    for table in ("deal_monitors", "deal_analyses", "deal_owners", "deal_events", "deals"):
        op.drop_table(table)
