"""invites: one-time codes that enrol a Telegram or Slack user with a role

Revision ID: invites_0001
Revises: core_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "invites_0001"
down_revision = "core_0001"
branch_labels = ("invites",)
depends_on = None


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "invites",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("person_id", sa.Integer, nullable=True),
        sa.Column("locale", sa.String(16), nullable=True),
        sa.Column("timezone", sa.String(64), nullable=True),
        _ts("created_at", False),
        _ts("expires_at", False),
        _ts("used_at"),
        sa.Column("used_by", sa.Integer, nullable=True),
        sa.Column("used_address", sa.String(250), nullable=True),
        _ts("revoked_at"),
        sa.UniqueConstraint("code_hash", name="uq_invites_code_hash"),
    )


def downgrade() -> None:
    op.drop_table("invites")
