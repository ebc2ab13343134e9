"""blaze: where the Blaze POS sync stopped, per entity (a modified-date cursor and the page within it)

Revision ID: blaze_0001
Revises: store_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "blaze_0001"
down_revision = "store_0001"
branch_labels = ("blaze",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blaze_cursors",
        sa.Column("entity", sa.String(32), primary_key=True),
        sa.Column("modified_ms", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("window_end_ms", sa.BigInteger),
        sa.Column("skip", sa.Integer, nullable=False, server_default="0"),
        sa.Column("rows", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("calls", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("last_error", sa.String(500)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("blaze_cursors")
