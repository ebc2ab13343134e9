"""POS webhook events, stored verbatim before the 200 so that nothing acknowledged is ever lost."""

from __future__ import annotations

import sqlalchemy as sa

from storage.db import metadata
from storage.types import UTCDateTime

pos_events = sa.Table(
    "pos_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("event_id", sa.String(200), nullable=False, unique=True),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("processed_at", UTCDateTime),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("error", sa.Text),
    sa.Index("ix_pos_events_pending", "processed_at", "id"),
)
