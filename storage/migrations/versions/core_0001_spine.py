"""core: people, addresses, opt-outs, inbox, outbox, receipts, conversations, job runs

Revision ID: core_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "core_0001"
down_revision = None
branch_labels = ("core",)
depends_on = None


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "persons",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("roles", sa.String(200), nullable=False, server_default=""),
        sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"),
        sa.Column("locale", sa.String(16), nullable=False, server_default="en"),
        sa.Column("external_id", sa.String(100), nullable=True, unique=True),
        sa.Column("attributes", sa.JSON, nullable=False, server_default="{}"),
        _ts("created_at", False),
        _ts("updated_at", False),
    )
    op.create_table(
        "addresses",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="CASCADE"), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("address", sa.String(200), nullable=False),
        _ts("unreachable_at"),
        sa.Column("unreachable_reason", sa.String(500), nullable=True),
        sa.UniqueConstraint("channel", "address", name="uq_addresses_channel_address"),
    )
    op.create_index("ix_addresses_person_id", "addresses", ["person_id"])
    op.create_table(
        "opt_outs",
        sa.Column("channel", sa.String(32), primary_key=True),
        sa.Column("address", sa.String(200), primary_key=True),
        sa.Column("opted_out", sa.Boolean, nullable=False),
        sa.Column("keyword", sa.String(32), nullable=True),
        _ts("changed_at", False),
    )
    op.create_table(
        "inbound",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("address", sa.String(200), nullable=False),
        sa.Column("provider_id", sa.String(200), nullable=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("thread", sa.String(200), nullable=True),
        sa.Column("callback_data", sa.String(500), nullable=True),
        sa.Column("files", sa.JSON, nullable=True),
        sa.Column("display_name", sa.String(200), nullable=True),
        sa.Column("person_id", sa.Integer, nullable=True),
        sa.Column("status", sa.String(16), nullable=False, server_default="received"),
        sa.Column("handler", sa.String(100), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        _ts("received_at", False),
        _ts("stored_at", False),
        _ts("handled_at"),
        sa.UniqueConstraint("channel", "provider_id", name="uq_inbound_channel_provider_id"),
    )
    op.create_index("ix_inbound_status", "inbound", ["status"])
    op.create_index("ix_inbound_person", "inbound", ["person_id", "channel", "id"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("address", sa.String(200), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("idempotency_key", sa.String(300), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        _ts("next_attempt_at", False),
        sa.Column("buttons", sa.JSON, nullable=True),
        sa.Column("thread", sa.String(200), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("person_id", sa.Integer, nullable=True),
        sa.Column("quiet_tz", sa.String(64), nullable=True),
        sa.Column("compliance", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("resent", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("claimed_by", sa.String(100), nullable=True),
        _ts("claimed_at"),
        _ts("created_at", False),
        _ts("sent_at"),
        _ts("delivered_at"),
        _ts("updated_at", False),
        sa.UniqueConstraint("channel", "idempotency_key", name="uq_outbox_channel_idempotency_key"),
    )
    op.create_index("ix_outbox_due", "outbox", ["channel", "status", "next_attempt_at"])
    op.create_table(
        "outbox_receipts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("outbox_id", sa.Integer, sa.ForeignKey("outbox.id", ondelete="CASCADE"), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("provider_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="sent"),
        sa.Column("reason", sa.Text, nullable=True),
        _ts("created_at", False),
        _ts("updated_at", False),
    )
    op.create_index("ix_outbox_receipts_lookup", "outbox_receipts", ["channel", "provider_id", "id"])
    op.create_index("ix_outbox_receipts_outbox", "outbox_receipts", ["outbox_id"])
    op.create_table(
        "conversations",
        sa.Column("person_id", sa.Integer, primary_key=True),
        sa.Column("channel", sa.String(32), primary_key=True),
        sa.Column("state", sa.JSON, nullable=False, server_default="{}"),
        _ts("updated_at", False),
    )
    op.create_table(
        "job_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job", sa.String(100), nullable=False),
        sa.Column("scope", sa.String(200), nullable=False, server_default=""),
        sa.Column("period", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        _ts("started_at", False),
        _ts("finished_at"),
        sa.UniqueConstraint("job", "scope", "period", name="uq_job_runs_job_scope_period"),
    )


def downgrade() -> None:
    for table in ("job_runs", "conversations", "outbox_receipts", "outbox", "inbound", "opt_outs",
                  "addresses", "persons"):
        op.drop_table(table)
