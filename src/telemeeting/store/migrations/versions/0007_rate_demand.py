"""rate_demand: each API process's recent request rate per account (cluster-wide rate limit)

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_demand",
        sa.Column("node_id", sa.String(length=128), primary_key=True),
        sa.Column("account_sid", sa.String(length=64), primary_key=True),
        sa.Column("demand", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rate_demand")
