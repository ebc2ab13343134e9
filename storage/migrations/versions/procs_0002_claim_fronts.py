"""procs: the fronts claims read first — queued outbox rows in due order, waiting inbound in id order

Revision ID: procs_0002
Revises: procs_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "procs_0002"
down_revision = "procs_0001"
branch_labels = None
depends_on = None

_QUEUED = sa.text("status = 'queued'")
_RECEIVED = sa.text("status = 'received'")


def upgrade() -> None:
    # Only open rows are in them, so a claim's first read costs what it takes, however long the
    # history: ordered on ix_outbox_due (no id) or the primary key, it sorted every due row or
    # walked past every handled one.
    op.create_index("ix_outbox_queue", "outbox", ["channel", "next_attempt_at", "id"],
                    postgresql_where=_QUEUED, sqlite_where=_QUEUED)
    op.create_index("ix_inbound_received", "inbound", ["id"], postgresql_where=_RECEIVED, sqlite_where=_RECEIVED)


def downgrade() -> None:
    op.drop_index("ix_inbound_received", "inbound")
    op.drop_index("ix_outbox_queue", "outbox")
