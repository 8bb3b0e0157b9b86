"""PostgreSQL announces new carrier orders and new pushes itself: statement-level triggers on
`orders` and `events` call pg_notify, so a request's transaction needs no extra round trip for
its wake-ups, and any writer (the API, the CLI, the console, a future one) wakes the media and
dispatcher roles of every process without remembering to. NOTIFY is delivered at commit and
identical notifications of one transaction are folded into one, as before. SQLite has no
NOTIFY: in-process hooks and store/sqlite_watch.py wake the roles there.

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

#: The channels of store/unit_of_work.py (ORDERS_CHANNEL, PUSHES_CHANNEL), as they were when
#: this migration was written: a migration must not change when the code does.
_ORDERS = "telemeeting_orders"
_PUSHES = "telemeeting_pushes"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"""
        CREATE FUNCTION telemeeting_orders_added() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{_ORDERS}', '');
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER orders_added AFTER INSERT ON orders "
        "FOR EACH STATEMENT EXECUTE FUNCTION telemeeting_orders_added()"
    )
    # Only pushes due for delivery wake the dispatchers (sandbox events are stored, not pushed).
    op.execute(
        f"""
        CREATE FUNCTION telemeeting_pushes_added() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF EXISTS (SELECT 1 FROM added WHERE delivery = 'pending') THEN
                PERFORM pg_notify('{_PUSHES}', '');
            END IF;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER pushes_added AFTER INSERT ON events REFERENCING NEW TABLE AS added "
        "FOR EACH STATEMENT EXECUTE FUNCTION telemeeting_pushes_added()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER pushes_added ON events")
    op.execute("DROP FUNCTION telemeeting_pushes_added()")
    op.execute("DROP TRIGGER orders_added ON orders")
    op.execute("DROP FUNCTION telemeeting_orders_added()")
