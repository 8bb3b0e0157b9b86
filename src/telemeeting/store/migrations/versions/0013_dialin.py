"""Dial-in (issue 15, extension):

- `meetings.dialin`, `meetings.pin`: callers may dial in to the meeting with its number and PIN;
- `legs.direction`: "out" for a leg we dialled, "in" for a caller who dialled in;
- an index to find an open dial-in meeting by its number across apps (the IVR's lookup).

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "meetings",
        sa.Column("dialin", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "meetings",
        sa.Column("pin", sa.String(length=8), nullable=False, server_default=""),
    )
    op.add_column(
        "legs",
        sa.Column("direction", sa.String(length=3), nullable=False, server_default="out"),
    )
    op.create_index("ix_meetings_meid_dialin", "meetings", ["meid", "dialin"])


def downgrade() -> None:
    op.drop_index("ix_meetings_meid_dialin", table_name="meetings")
    with op.batch_alter_table("legs") as batch:
        batch.drop_column("direction")
    with op.batch_alter_table("meetings") as batch:
        batch.drop_column("pin")
        batch.drop_column("dialin")
