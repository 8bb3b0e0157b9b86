"""Fewer index writes per leg, and an index for retention (docs/performance.md, Soak):

- drop `ix_legs_meeting_state` (meeting_id, state): every query of legs starts from the meeting
  (`ix_legs_meeting_phone` leads with meeting_id, and a meeting has a handful of legs), while the
  index made every leg state change a non-HOT update on PostgreSQL: a new heap tuple and an
  entry in each of the legs' three indexes, for callout -> alerting -> answer -> disconnect. Now
  state, answer, end and mute changes touch no indexed column;
- on PostgreSQL, legs' pages are filled to 85 % so those updates find room on their page (HOT
  needs it); only pages written from now on;
- `ix_meetings_ended` (ended_at): the clock's retention finds the meetings that ended before its
  cutoff without reading every ended meeting (store/retention.py).

Revision ID: 0014
Revises: 0013
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_legs_meeting_state", table_name="legs")
    op.create_index("ix_meetings_ended", "meetings", ["ended_at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE legs SET (fillfactor = 85)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE legs RESET (fillfactor)")
    op.drop_index("ix_meetings_ended", table_name="meetings")
    op.create_index("ix_legs_meeting_state", "legs", ["meeting_id", "state"])
