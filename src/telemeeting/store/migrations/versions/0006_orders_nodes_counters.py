"""meetings.live_count; legs by phone; carrier orders and nodes as data

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("meetings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("live_count", sa.Integer(), nullable=False, server_default="0")
        )
    op.execute(
        "UPDATE meetings SET live_count = (SELECT COUNT(*) FROM legs WHERE legs.meeting_id = "
        "meetings.id AND legs.state != 'disconnect')"
    )
    with op.batch_alter_table("legs", schema=None) as batch_op:
        batch_op.create_index("ix_legs_meeting_phone", ["meeting_id", "phone"])
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("meeting_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_orders_meeting", "orders", ["meeting_id", "id"])
    op.create_table(
        "nodes",
        sa.Column("id", sa.String(length=128), primary_key=True),
        sa.Column("roles", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=256), nullable=False, server_default=""),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("heartbeat_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("nodes")
    op.drop_index("ix_orders_meeting", table_name="orders")
    op.drop_table("orders")
    with op.batch_alter_table("legs", schema=None) as batch_op:
        batch_op.drop_index("ix_legs_meeting_phone")
    with op.batch_alter_table("meetings", schema=None) as batch_op:
        batch_op.drop_column("live_count")
