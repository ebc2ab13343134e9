"""receipts: the outside budtender network (dispensaries, budtenders), receipt photos and their claims, ledger sources

Revision ID: receipts_0001
Revises: store_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "receipts_0001"
down_revision = "store_0001"
branch_labels = ("receipts",)
depends_on = None


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _money(name: str) -> sa.Column:
    return sa.Column(name, sa.Numeric(14, 2).with_variant(sa.String(32), "sqlite"))


def upgrade() -> None:
    op.create_table(
        "dispensaries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("city", sa.String(100)),
        _ts("created_at", False),
        sa.UniqueConstraint("key", name="uq_dispensaries_key"),
    )
    op.create_table(
        "network_budtenders",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="CASCADE"), nullable=False),
        sa.Column("dispensary_id", sa.Integer, sa.ForeignKey("dispensaries.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("phone", sa.String(32)),
        sa.Column("city", sa.String(100)),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        _ts("created_at", False),
        _ts("updated_at", False),
        sa.UniqueConstraint("person_id", name="uq_network_budtenders_person"),
        sa.UniqueConstraint("phone", name="uq_network_budtenders_phone"),
    )
    op.create_index("ix_network_budtenders_dispensary", "network_budtenders", ["dispensary_id"])
    op.create_table(
        "receipts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("budtender_person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="SET NULL")),
        sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id", ondelete="SET NULL")),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(300)),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("address", sa.String(200), nullable=False),
        sa.Column("image_sha256", sa.String(64), nullable=False),
        sa.Column("image", sa.LargeBinary),
        sa.Column("mimetype", sa.String(100)),
        sa.Column("caption", sa.String(500)),
        sa.Column("store_name", sa.String(200)),
        sa.Column("receipt_number", sa.String(100)),
        sa.Column("receipt_date", sa.Date),
        sa.Column("customer_phone", sa.String(32)),
        sa.Column("customer_name", sa.String(200)),
        sa.Column("lines", sa.JSON, nullable=False, server_default="[]"),
        _money("house_total"),
        sa.Column("customer_points", sa.Integer, nullable=False, server_default="0"),
        sa.Column("budtender_points", sa.Integer, nullable=False, server_default="0"),
        sa.Column("read_by", sa.String(16)),
        sa.Column("decided_by", sa.String(200)),
        sa.Column("duplicate_of", sa.Integer),
        sa.Column("inbound_id", sa.Integer),
        _ts("received_at", False),
        _ts("decided_at"),
        sa.UniqueConstraint("inbound_id", name="uq_receipts_inbound"),
    )
    op.create_index("ix_receipts_status", "receipts", ["status", "id"])
    op.create_index("ix_receipts_image", "receipts", ["image_sha256"])
    op.create_table(
        "receipt_claims",
        sa.Column("key", sa.String(300), primary_key=True),
        sa.Column("receipt_id", sa.Integer, sa.ForeignKey("receipts.id", ondelete="CASCADE"), nullable=False),
        _ts("created_at", False),
    )
    op.add_column("loyalty_ledger", sa.Column("receipt_id", sa.Integer))
    op.create_index("ix_loyalty_ledger_receipt", "loyalty_ledger", ["receipt_id"])
    op.create_index("ix_loyalty_ledger_order", "loyalty_ledger", ["order_external_id"])


def downgrade() -> None:
    op.drop_index("ix_loyalty_ledger_order", "loyalty_ledger")
    op.drop_index("ix_loyalty_ledger_receipt", "loyalty_ledger")
    with op.batch_alter_table("loyalty_ledger") as batch:
        batch.drop_column("receipt_id")
    for table in ("receipt_claims", "receipts", "network_budtenders", "dispensaries"):
        op.drop_table(table)
