"""Billing and the rest of the account surface: CDRs kept for pulling (CallCdr.wx), a ledger of
every balance change, per-account price and credit limit, per-app time zone

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("price_per_unit", sa.Float(), nullable=True))
        batch_op.add_column(
            sa.Column("credit_limit", sa.Float(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("timezone", sa.String(length=64), nullable=False, server_default="")
        )
    op.create_table(
        "cdrs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("account_sid", sa.String(length=64), nullable=False),
        sa.Column("app_id", sa.String(length=64), nullable=False),
        sa.Column("env", sa.String(length=16), nullable=False),
        sa.Column("meeting_id", sa.String(length=32), nullable=False),
        sa.Column("leg_id", sa.String(length=32), nullable=False, unique=True),
        sa.Column("requestid", sa.String(length=40), nullable=False),
        sa.Column("called", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("charge", sa.Float(), nullable=False, server_default="0"),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_cdrs_account_env_id", "cdrs", ["account_sid", "env", "id"])
    op.create_index("ix_cdrs_account_env_created", "cdrs", ["account_sid", "env", "created_at"])
    op.create_index("ix_cdrs_account_requestid", "cdrs", ["account_sid", "requestid"])
    op.create_table(
        "ledger",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("account_sid", sa.String(length=64), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("balance_after", sa.Float(), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False, server_default=""),
        sa.Column("reference", sa.String(length=64), nullable=False, server_default=""),
    )
    op.create_index("ix_ledger_account_id", "ledger", ["account_sid", "id"])


def downgrade() -> None:
    op.drop_index("ix_ledger_account_id", table_name="ledger")
    op.drop_table("ledger")
    for name in (
        "ix_cdrs_account_requestid",
        "ix_cdrs_account_env_created",
        "ix_cdrs_account_env_id",
    ):
        op.drop_index(name, table_name="cdrs")
    op.drop_table("cdrs")
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.drop_column("timezone")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("credit_limit")
        batch_op.drop_column("price_per_unit")
