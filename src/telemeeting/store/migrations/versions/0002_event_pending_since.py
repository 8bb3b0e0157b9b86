"""events.pending_since: when an event last became pending (give-up is measured from it)

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pending_since", sa.Float(), nullable=True))
        batch_op.create_index("ix_events_meeting_leg_seq", ["meeting_id", "leg_id", "seq"])
    op.execute("UPDATE events SET pending_since = created_at")


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_meeting_leg_seq")
        batch_op.drop_column("pending_since")
