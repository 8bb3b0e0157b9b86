"""In-call media state that must outlive one media node (issue 14):

- `legs.held`: a member on hold (queryMeeting's `held`), kept like `muted`;
- `meeting_media`: the media settings of a meeting that asked for more than the defaults
  (record, beep, endoncreatorleave, speakerevents), written at createMeeting. The clock applies
  them when a booked meeting starts, and a media node taking over a meeting applies them again.
  Plain meetings have no row (the defaults of `[meetings]` apply), so they cost nothing here.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "legs",
        sa.Column("held", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "meeting_media",
        sa.Column("meeting_id", sa.String(length=32), primary_key=True),
        sa.Column("record", sa.Boolean(), nullable=False),
        # 0 none, 1 on join, 2 on leave, 3 both (resolved: never "the default").
        sa.Column("beep", sa.Integer(), nullable=False),
        sa.Column("end_on_creator_leave", sa.Boolean(), nullable=False),
        sa.Column("speaker_events", sa.Boolean(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("meeting_media")
    with op.batch_alter_table("legs") as batch:
        batch.drop_column("held")
