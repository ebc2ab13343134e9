"""chatters: where a day's hours came from (a corrected export must not undo Hubstaff), invited leads' shifts

Revision ID: chatters_0002
Revises: chatters_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "chatters_0002"
down_revision = "chatters_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("chatter_days", sa.Column("hours_source", sa.String(16), nullable=True))
    # Before this revision an export's hours never replaced stored ones, so stored hours that an
    # export may have written are indistinguishable from Hubstaff's: leave them unmarked (NULL),
    # which a corrected export may replace, as it could not before.
    op.create_table(
        "chat_lead_shifts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="CASCADE"), nullable=False),
        sa.Column("shift_start", sa.String(5), nullable=False),
        sa.Column("days", sa.String(64), nullable=False),
        sa.Column("teams", sa.JSON, nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("person_id", name="uq_chat_lead_shifts_person_id"),
    )


def downgrade() -> None:
    op.drop_table("chat_lead_shifts")
    with op.batch_alter_table("chatter_days") as batch:
        batch.drop_column("hours_source")
