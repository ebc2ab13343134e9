"""procs: live processes with heartbeats, leases on inbound work and job runs, NOTIFY on new work

Revision ID: procs_0001
Revises: core_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "procs_0001"
down_revision = "core_0001"
branch_labels = ("procs",)
depends_on = None

_OPEN = "status IN ('queued', 'sending')"

_NOTIFY_FUNCTION = """
CREATE OR REPLACE FUNCTION huddle_notify_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('huddle_{table}', NEW.channel);
    RETURN NULL;
END $$
"""


def upgrade() -> None:
    op.create_table(
        "processes",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_processes_lease_until", "processes", ["lease_until"])
    with op.batch_alter_table("inbound") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(100), nullable=True))
        batch.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_inbound_waiting", "inbound", ["channel", "address", "id"],
                    postgresql_where=sa.text("status = 'received'"), sqlite_where=sa.text("status = 'received'"))
    op.create_index("ix_outbox_open", "outbox", ["channel", "address", "id"],
                    postgresql_where=sa.text(_OPEN), sqlite_where=sa.text(_OPEN))
    with op.batch_alter_table("job_runs") as batch:
        batch.add_column(sa.Column("owner", sa.String(100), nullable=True))
        batch.add_column(sa.Column("fire_time", sa.DateTime(timezone=True), nullable=True))
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in ("outbox", "inbound"):
        op.execute(_NOTIFY_FUNCTION.format(table=table))
    op.execute("CREATE TRIGGER outbox_queued_notify AFTER INSERT OR UPDATE OF status, next_attempt_at ON outbox "
               "FOR EACH ROW WHEN (NEW.status = 'queued') EXECUTE FUNCTION huddle_notify_outbox()")
    op.execute("CREATE TRIGGER inbound_waiting_notify AFTER INSERT OR UPDATE OF claimed_by ON inbound "
               "FOR EACH ROW WHEN (NEW.status = 'received' AND NEW.claimed_by IS NULL) "
               "EXECUTE FUNCTION huddle_notify_inbound()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS outbox_queued_notify ON outbox")
        op.execute("DROP TRIGGER IF EXISTS inbound_waiting_notify ON inbound")
        op.execute("DROP FUNCTION IF EXISTS huddle_notify_outbox()")
        op.execute("DROP FUNCTION IF EXISTS huddle_notify_inbound()")
    with op.batch_alter_table("job_runs") as batch:
        batch.drop_column("fire_time")
        batch.drop_column("owner")
    op.drop_index("ix_outbox_open", "outbox")
    op.drop_index("ix_inbound_waiting", "inbound")
    with op.batch_alter_table("inbound") as batch:
        batch.drop_column("claimed_at")
        batch.drop_column("claimed_by")
    op.drop_table("processes")
