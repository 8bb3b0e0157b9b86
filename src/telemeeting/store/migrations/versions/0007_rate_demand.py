"""rate_demand: each API process's recent request rate per account (cluster-wide rate limit);
legs lose ix_legs_meeting_id, which the (meeting_id, state) and (meeting_id, phone) indexes cover,
and ix_legs_request_id and ix_events_app_id, which no query uses (fewer indexes per insert)

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
    with op.batch_alter_table("legs", schema=None) as batch_op:
        batch_op.drop_index("ix_legs_meeting_id")
        batch_op.drop_index("ix_legs_request_id")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_app_id")


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_app_id", ["app_id"], unique=False)
    with op.batch_alter_table("legs", schema=None) as batch_op:
        batch_op.create_index("ix_legs_request_id", ["request_id"], unique=False)
        batch_op.create_index("ix_legs_meeting_id", ["meeting_id"], unique=False)
    op.drop_table("rate_demand")
