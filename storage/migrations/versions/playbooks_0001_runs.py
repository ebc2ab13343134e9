"""playbooks: runs (one per playbook, triggering event and person), their steps, pauses; the cap's index

Revision ID: playbooks_0001
Revises: core_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "playbooks_0001"
down_revision = "core_0001"
branch_labels = ("playbooks",)
depends_on = None


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "playbook_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("playbook", sa.String(100), nullable=False),
        sa.Column("event_id", sa.Integer, nullable=False),
        sa.Column("subject", sa.String(40), nullable=False),
        sa.Column("person_id", sa.Integer),
        sa.Column("customer_id", sa.Integer),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("held_out", sa.Boolean, nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        _ts("wake_at"),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("stop_reason", sa.String(100)),
        _ts("started_at", False),
        _ts("updated_at", False),
        _ts("finished_at"),
        sa.UniqueConstraint("playbook", "event_id", "subject", name="uq_playbook_runs_playbook"),
    )
    op.create_index("ix_playbook_runs_due", "playbook_runs", ["status", "wake_at"])
    op.create_index("ix_playbook_runs_customer", "playbook_runs", ["customer_id", "status"])
    op.create_index("ix_playbook_runs_person", "playbook_runs", ["person_id", "status"])
    op.create_table(
        "playbook_steps",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("result", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("outbox_id", sa.Integer),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        _ts("at", False),
        sa.UniqueConstraint("run_id", "step", name="uq_playbook_steps_run_id"),
    )
    op.create_index("ix_playbook_steps_at", "playbook_steps", ["at"])
    op.create_table(
        "playbook_pauses",
        sa.Column("playbook", sa.String(100), primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
        _ts("paused_at", False),
    )
    # the frequency cap reads a recipient's recent sends at the last step of every marketing message
    op.create_index("ix_outbox_recipient_sent", "outbox", ["channel", "address", "sent_at"])


def downgrade() -> None:
    op.drop_index("ix_outbox_recipient_sent", "outbox")
    op.drop_table("playbook_pauses")
    op.drop_table("playbook_steps")
    op.drop_table("playbook_runs")
