"""PostgreSQL numbers each CDR when its transaction commits, under its account's row lock: a
deferred constraint trigger on `cdrs` locks the account and gives the row the next id at COMMIT.

The CDR pull pages by id, so an account's ids must become visible in id order (store/cdrs.py).
Before, every transaction that ended a leg locked its account's row from the CDR insert to the
commit, with client round trips in between: on a busy machine the server answered slowly while
holding it and one account's leg ends queued (up to 64 sessions waiting in the soak,
docs/performance.md). Now an unbilled change (sandbox, or an account without a balance) takes
the lock only inside COMMIT, for as long as PostgreSQL needs to write it; a billed one still
locks first, for its balance, and the trigger's lock is then already its own. The renumbering
is a second version of the row, which the clock's vacuum (store/vacuum.py) reclaims.

SQLite has one writer at a time: its transactions commit in the order they took ids.

Revision ID: 0015
Revises: 0014
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION telemeeting_cdr_commit_order() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM 1 FROM accounts WHERE sid = NEW.account_sid FOR NO KEY UPDATE;
            UPDATE cdrs SET id = nextval(pg_get_serial_sequence('cdrs', 'id'))
            WHERE id = NEW.id;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE CONSTRAINT TRIGGER cdrs_commit_order AFTER INSERT ON cdrs "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
        "EXECUTE FUNCTION telemeeting_cdr_commit_order()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER cdrs_commit_order ON cdrs")
    op.execute("DROP FUNCTION telemeeting_cdr_commit_order()")
