"""events: the append-only event log and its consumers' durable cursors

Revision ID: events_0001
Revises: core_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "events_0001"
down_revision = "core_0001"
branch_labels = ("events",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("person_id", sa.Integer, nullable=True),
        sa.Column("customer_id", sa.Integer, nullable=True),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("source_id", sa.String(200), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("type", "source_id", name="uq_events_type_source"),
    )
    op.create_index("ix_events_person", "events", ["person_id", "id"])
    op.create_index("ix_events_customer", "events", ["customer_id", "id"])
    op.create_index("ix_events_occurred", "events", ["occurred_at"])
    op.create_table(
        "event_cursors",
        sa.Column("consumer", sa.String(100), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("event_cursors")
    op.drop_table("events")
