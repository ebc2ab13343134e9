"""admin: sessions signed out before their time (refused by every process)

Revision ID: admin_0002
Revises: admin_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "admin_0002"
down_revision = "admin_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "admin_signouts",
        sa.Column("session_id", sa.String(64), primary_key=True),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("admin_signouts")
