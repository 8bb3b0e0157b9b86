"""Meeting recordings (issue 14): one row per recording of a meeting's mix, written when it
starts; `stopped_at` when it is stopped (a meeting's end also ends it, see service/recordings.py).
The audio lives in files named after the id under `[recordings] directory`. And the talkers of
each meeting with speaker events (a row from its creation on: queryMeeting's `speaking`).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recordings",
        sa.Column("id", sa.String(length=32), primary_key=True),
        sa.Column("meeting_id", sa.String(length=32), nullable=False),
        sa.Column("app_id", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("stopped_at", sa.Float(), nullable=True),
        sa.Column("path", sa.Text(), nullable=False),
    )
    op.create_index("ix_recordings_meeting", "recordings", ["meeting_id", "started_at"])
    op.create_index("ix_recordings_started", "recordings", ["started_at"])
    op.create_table(
        "speakers",
        sa.Column("meeting_id", sa.String(length=32), primary_key=True),
        # The talking legs' ids, comma-separated ("" when nobody talks).
        sa.Column("legs", sa.Text(), nullable=False, server_default=""),
        sa.Column("at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("speakers")
    op.drop_index("ix_recordings_started", table_name="recordings")
    op.drop_index("ix_recordings_meeting", table_name="recordings")
    op.drop_table("recordings")
