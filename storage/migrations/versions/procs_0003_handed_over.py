"""procs: when a claimed send was handed to the provider, so a takeover flags only those as possibly repeated

Revision ID: procs_0003
Revises: procs_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "procs_0003"
down_revision = "procs_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("handed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("handed_at")
