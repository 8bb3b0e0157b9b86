"""meetings.ever_joined and meetings.leg_count, so that changes need only the live legs

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("meetings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("ever_joined", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("leg_count", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("legs", schema=None) as batch_op:
        batch_op.create_index("ix_legs_meeting_state", ["meeting_id", "state"])
    op.execute(
        "UPDATE meetings SET leg_count = (SELECT COUNT(*) FROM legs WHERE legs.meeting_id = "
        "meetings.id), ever_joined = EXISTS (SELECT 1 FROM legs WHERE legs.meeting_id = "
        "meetings.id AND legs.answered_at IS NOT NULL)"
    )


def downgrade() -> None:
    with op.batch_alter_table("legs", schema=None) as batch_op:
        batch_op.drop_index("ix_legs_meeting_state")
    with op.batch_alter_table("meetings", schema=None) as batch_op:
        batch_op.drop_column("leg_count")
        batch_op.drop_column("ever_joined")
