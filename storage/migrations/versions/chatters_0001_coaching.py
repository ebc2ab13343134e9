"""chatters: teams, chatters, name aliases, daily metrics (unique per chatter and day), coaching log

Revision ID: chatters_0001
Revises: core_0001
"""

import sqlalchemy as sa
from alembic import op

from storage.types import Money

revision = "chatters_0001"
down_revision = "core_0001"
branch_labels = ("chatters",)
depends_on = None


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "chat_teams",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        _ts("created_at", False),
        sa.UniqueConstraint("name", name="uq_chat_teams_name"),
    )
    op.create_table(
        "chatters",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("norm_name", sa.String(200), nullable=False),
        sa.Column("team_id", sa.Integer, sa.ForeignKey("chat_teams.id", ondelete="SET NULL"), nullable=True),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        _ts("created_at", False),
        _ts("updated_at", False),
        sa.UniqueConstraint("norm_name", name="uq_chatters_norm_name"),
    )
    op.create_table(
        "chatter_aliases",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("alias", sa.String(200), nullable=False),
        sa.Column("norm_alias", sa.String(200), nullable=False),
        sa.Column("chatter_id", sa.Integer, sa.ForeignKey("chatters.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_by", sa.Integer, nullable=True),
        _ts("created_at", False),
        sa.UniqueConstraint("norm_alias", name="uq_chatter_aliases_norm_alias"),
    )
    op.create_table(
        "chatter_days",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("chatter_id", sa.Integer, sa.ForeignKey("chatters.id", ondelete="CASCADE"), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("sales", Money(), nullable=True),
        sa.Column("cvr", sa.Float, nullable=True),
        sa.Column("unlock_rate", sa.Float, nullable=True),
        sa.Column("golden_ratio", sa.Float, nullable=True),
        sa.Column("msgs_per_hr", sa.Float, nullable=True),
        sa.Column("reply_time_s", sa.Float, nullable=True),
        sa.Column("fans_chatted", sa.Integer, nullable=True),
        sa.Column("ppvs_sent", sa.Integer, nullable=True),
        sa.Column("ppvs_unlocked", sa.Integer, nullable=True),
        sa.Column("hours", sa.Float, nullable=True),
        sa.Column("group", sa.String(200), nullable=True),
        _ts("updated_at", False),
        sa.UniqueConstraint("chatter_id", "day", name="uq_chatter_days_chatter_id_day"),
    )
    op.create_index("ix_chatter_days_day", "chatter_days", ["day"])
    op.create_table(
        "coaching_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("chatter_id", sa.Integer, sa.ForeignKey("chatters.id", ondelete="CASCADE"), nullable=False),
        sa.Column("lead_id", sa.Integer, nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("notes", sa.Text, nullable=False),
        _ts("at", False),
    )
    op.create_index("ix_coaching_log_chatter", "coaching_log", ["chatter_id", "at"])


def downgrade() -> None:
    for table in ("coaching_log", "chatter_days", "chatter_aliases", "chatters", "chat_teams"):
        op.drop_table(table)
