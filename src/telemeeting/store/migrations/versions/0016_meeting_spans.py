"""One meeting across servers (issue 16): who carries each leg, which servers a meeting spans,
and orders addressed to one server.

- `legs.node`: the server carrying the leg's call; "" is the meeting's owner (every leg before
  this revision, and every leg the owner dials), so a leg costs nothing more to insert.
- `orders.node`: the server the order is for; "" is the meeting's owner at claim time (as
  before), another id is that server (a dial-in leg's mute, a meeting-wide order's copy).
- `meeting_spans`: the servers other than the owner a meeting is extended to, with their end of
  the cascade link.

Both new indexes are partial (only rows with a server named), so they stay small and a leg's
state changes remain HOT updates on PostgreSQL.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "legs", sa.Column("node", sa.String(length=128), nullable=False, server_default="")
    )
    op.add_column(
        "orders", sa.Column("node", sa.String(length=128), nullable=False, server_default="")
    )
    named = sa.text("node != ''")
    op.create_index("ix_legs_node", "legs", ["node"], postgresql_where=named, sqlite_where=named)
    op.create_index(
        "ix_orders_node", "orders", ["node", "id"], postgresql_where=named, sqlite_where=named
    )
    op.create_table(
        "meeting_spans",
        sa.Column("meeting_id", sa.String(length=32), primary_key=True),
        sa.Column("node", sa.String(length=128), primary_key=True),
        sa.Column("host", sa.String(length=64), nullable=False, server_default=""),
        sa.Column("port", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_meeting_spans_node", "meeting_spans", ["node"])


def downgrade() -> None:
    op.drop_index("ix_meeting_spans_node", table_name="meeting_spans")
    op.drop_table("meeting_spans")
    op.drop_index("ix_orders_node", table_name="orders")
    op.drop_index("ix_legs_node", table_name="legs")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("node")
    with op.batch_alter_table("legs") as batch:
        batch.drop_column("node")
