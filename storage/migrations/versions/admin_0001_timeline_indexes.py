"""admin: indexes for one person's timeline across channels, newest first (keyset paging)

Revision ID: admin_0001
Revises: store_0001
"""

from alembic import op

revision = "admin_0001"
down_revision = "store_0001"
branch_labels = ("admin",)
depends_on = None


def upgrade() -> None:
    op.create_index("ix_inbound_person_time", "inbound", ["person_id", "received_at", "id"])
    op.create_index("ix_outbox_person_time", "outbox", ["person_id", "created_at", "id"])
    op.create_index("ix_loyalty_ledger_person_time", "loyalty_ledger", ["person_id", "created_at", "id"])
    op.create_index("ix_loyalty_ledger_customer_time", "loyalty_ledger", ["customer_id", "created_at", "id"])
    op.create_index("ix_outbox_status_updated", "outbox", ["status", "updated_at"])


def downgrade() -> None:
    for name, table in (("ix_outbox_status_updated", "outbox"), ("ix_loyalty_ledger_customer_time", "loyalty_ledger"),
                        ("ix_loyalty_ledger_person_time", "loyalty_ledger"), ("ix_outbox_person_time", "outbox"),
                        ("ix_inbound_person_time", "inbound")):
        op.drop_index(name, table_name=table)
