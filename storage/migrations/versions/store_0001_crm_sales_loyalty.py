"""store: stores, customers (CRM), products, staff, transactions + items, loyalty ledger, POS events, handoffs

Revision ID: store_0001
Revises: core_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "store_0001"
down_revision = "core_0001"
branch_labels = ("store",)
depends_on = None


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _money(name: str, nullable: bool = False, default: str | None = None) -> sa.Column:
    # Money is NUMERIC(14,2) on PostgreSQL and a decimal string on SQLite (see storage/types.py).
    return sa.Column(name, sa.Numeric(14, 2).with_variant(sa.String(32), "sqlite"), nullable=nullable,
                     server_default=default)


def upgrade() -> None:
    op.create_table(
        "stores",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("address", sa.String(500)),
        sa.Column("phone", sa.String(32)),
        sa.Column("hours", sa.String(500)),
        _ts("created_at", False),
        _ts("updated_at", False),
        sa.UniqueConstraint("code", name="uq_stores_code"),
    )
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("external_id", sa.String(100)),
        sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="SET NULL")),
        sa.Column("store_id", sa.Integer, sa.ForeignKey("stores.id", ondelete="SET NULL")),
        sa.Column("first_name", sa.String(100)),
        sa.Column("last_name", sa.String(100)),
        sa.Column("phone", sa.String(32)),
        sa.Column("email", sa.String(200)),
        sa.Column("vip_tier", sa.String(32)),
        sa.Column("signup_date", sa.Date),
        sa.Column("rewards_member", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("favourite_categories", sa.JSON, nullable=False, server_default="[]"),
        _money("lifetime_spend", default="0"),
        sa.Column("visits", sa.Integer, nullable=False, server_default="0"),
        _ts("last_visit_at"),
        sa.Column("birthday", sa.Date),
        sa.Column("sms_opt_in", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("attributes", sa.JSON, nullable=False, server_default="{}"),
        _ts("created_at", False),
        _ts("updated_at", False),
        sa.UniqueConstraint("external_id", name="uq_customers_external_id"),
        sa.UniqueConstraint("person_id", name="uq_customers_person_id"),
    )
    op.create_index("ix_customers_phone", "customers", ["phone"])
    op.create_table(
        "store_handoffs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="CASCADE"), nullable=False),
        sa.Column("customer_address", sa.String(200), nullable=False),
        sa.Column("staff_channel", sa.String(32), nullable=False),
        sa.Column("staff_address", sa.String(200), nullable=False),
        sa.Column("staff_thread", sa.String(200)),
        _ts("opened_at", False),
        _ts("closed_at"),
        sa.Column("closed_by", sa.String(200)),
    )
    op.create_index("ix_store_handoffs_open", "store_handoffs", ["person_id", "closed_at"])
    op.create_table(
        "products",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("external_id", sa.String(100), nullable=False),
        sa.Column("store_id", sa.Integer, sa.ForeignKey("stores.id", ondelete="SET NULL")),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("category", sa.String(100), nullable=False, server_default=""),
        sa.Column("brand", sa.String(200)),
        sa.Column("house_brand", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("price_tier", sa.Integer, nullable=False, server_default="2"),
        _money("price", nullable=True),
        sa.Column("in_stock", sa.Boolean, nullable=False, server_default=sa.true()),
        _ts("updated_at", False),
        sa.UniqueConstraint("external_id", name="uq_products_external_id"),
    )
    op.create_index("ix_products_category_stock", "products", ["category", "in_stock"])
    op.create_table(
        "store_staff",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("external_id", sa.String(100), nullable=False),
        sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="SET NULL")),
        sa.Column("store_id", sa.Integer, sa.ForeignKey("stores.id", ondelete="SET NULL")),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("phone", sa.String(32)),
        sa.Column("role", sa.String(32), nullable=False, server_default="budtender"),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        _ts("updated_at", False),
        sa.UniqueConstraint("external_id", name="uq_store_staff_external_id"),
    )
    op.create_table(
        "transactions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("external_id", sa.String(100), nullable=False),
        sa.Column("store_id", sa.Integer, sa.ForeignKey("stores.id", ondelete="SET NULL")),
        sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id", ondelete="SET NULL")),
        sa.Column("customer_external_id", sa.String(100)),
        sa.Column("budtender_person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="SET NULL")),
        sa.Column("budtender_external_id", sa.String(100)),
        _ts("occurred_at", False),
        _money("total"),
        _money("discount", default="0"),
        sa.Column("status", sa.String(16), nullable=False, server_default="completed"),
        sa.Column("rewards_signup", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("source", sa.String(16), nullable=False, server_default="import"),
        _ts("created_at", False),
        _ts("updated_at", False),
        sa.UniqueConstraint("external_id", name="uq_transactions_external_id"),
    )
    op.create_index("ix_transactions_budtender_time", "transactions", ["budtender_person_id", "occurred_at"])
    op.create_index("ix_transactions_customer_time", "transactions", ["customer_id", "occurred_at"])
    op.create_index("ix_transactions_store_time", "transactions", ["store_id", "occurred_at"])
    op.create_table(
        "transaction_items",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("external_id", sa.String(150), nullable=False),
        sa.Column("transaction_id", sa.Integer, sa.ForeignKey("transactions.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("product_id", sa.Integer, sa.ForeignKey("products.id", ondelete="SET NULL")),
        sa.Column("product_external_id", sa.String(100)),
        sa.Column("name", sa.String(300), nullable=False, server_default=""),
        sa.Column("category", sa.String(100), nullable=False, server_default=""),
        sa.Column("quantity", sa.Integer, nullable=False, server_default="1"),
        _money("unit_price"),
        _money("line_total"),
        sa.UniqueConstraint("external_id", name="uq_transaction_items_external_id"),
    )
    op.create_index("ix_transaction_items_transaction", "transaction_items", ["transaction_id"])
    op.create_table(
        "loyalty_ledger",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id", ondelete="CASCADE")),
        sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="CASCADE")),
        sa.Column("delta", sa.Integer, nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("order_external_id", sa.String(100)),
        sa.Column("note", sa.String(300)),
        _ts("created_at", False),
        sa.UniqueConstraint("key", name="uq_loyalty_ledger_key"),
    )
    op.create_index("ix_loyalty_ledger_customer", "loyalty_ledger", ["customer_id"])
    op.create_index("ix_loyalty_ledger_person", "loyalty_ledger", ["person_id"])
    op.create_table(
        "pos_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        _ts("received_at", False),
        _ts("processed_at"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.Text),
        sa.UniqueConstraint("event_id", name="uq_pos_events_event_id"),
    )
    op.create_index("ix_pos_events_pending", "pos_events", ["processed_at", "id"])


def downgrade() -> None:
    for table in ("pos_events", "loyalty_ledger", "transaction_items", "transactions", "store_staff", "products",
                  "store_handoffs", "customers", "stores"):
        op.drop_table(table)
