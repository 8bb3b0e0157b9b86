"""The database schema. Times are Unix seconds (floats): portable across SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class AccountRow(Base):
    __tablename__ = "accounts"

    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    auth_token: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128), default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    balance: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    #: None: the configured [billing] price_per_unit.
    price_per_unit: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: How far below zero the balance may go (postpaid tenants); 0 for prepaid.
    credit_limit: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")


class AppRow(Base):
    __tablename__ = "apps"

    appid: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_sid: Mapped[str] = mapped_column(ForeignKey("accounts.sid"), index=True)
    env: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(128), default="")
    callback_url: Mapped[str] = mapped_column(Text, default="")
    ip_whitelist: Mapped[str] = mapped_column(Text, default="")
    online: Mapped[bool] = mapped_column(Boolean, default=True)
    features: Mapped[str] = mapped_column(String(256), default="meeting")
    caller_id: Mapped[str] = mapped_column(String(32), default="")
    created_at: Mapped[float] = mapped_column(Float)
    #: IANA zone of the app's clients ("" = inferred from each request's Authorization).
    timezone: Mapped[str] = mapped_column(String(64), default="", server_default="")


class MeetingRow(Base):
    __tablename__ = "meetings"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.appid"))
    meid: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(128), default="")
    state: Mapped[str] = mapped_column(String(16))
    creator: Mapped[str] = mapped_column(String(64), default="")
    srcclid: Mapped[str] = mapped_column(String(32), default="")
    dstclid: Mapped[str] = mapped_column(String(32), default="")
    shownumber: Mapped[str] = mapped_column(String(32), default="")
    custom_parm: Mapped[str] = mapped_column(Text, default="")
    max_members: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float)
    book_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    end_reason: Mapped[str] = mapped_column(String(32), default="")
    next_seq: Mapped[int] = mapped_column(Integer, default=1)
    ever_joined: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    leg_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: The node whose carrier holds the calls; after a restart it ends only its own lost calls.
    owner: Mapped[str] = mapped_column(String(128), default="", server_default="")
    #: Legs not yet disconnected: fullness and emptiness without loading the legs.
    live_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: Dial-in (issue 15): callers join with the meeting number and this PIN.
    dialin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    pin: Mapped[str] = mapped_column(String(8), default="", server_default="")

    __table_args__ = (
        # A room number is unique among the app's meetings that have not ended (spec §6.1).
        Index(
            "uq_meetings_open_meid",
            "app_id",
            "meid",
            unique=True,
            sqlite_where=text("state != 'ended'"),
            postgresql_where=text("state != 'ended'"),
        ),
        Index("ix_meetings_app_meid", "app_id", "meid"),
        Index("ix_meetings_state_expires", "state", "expires_at"),
        Index("ix_meetings_state_book", "state", "book_at"),
        Index("ix_meetings_meid_dialin", "meid", "dialin"),
        # Retention's cutoff (store/retention.py, migration 0014).
        Index("ix_meetings_ended", "ended_at"),
    )


class LegRow(Base):
    __tablename__ = "legs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    meeting_id: Mapped[str] = mapped_column(ForeignKey("meetings.id"))
    position: Mapped[int] = mapped_column(Integer)
    phone: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128), default="")
    request_id: Mapped[str] = mapped_column(String(40))
    custom_parm: Mapped[str] = mapped_column(Text, default="")
    caller_id: Mapped[str] = mapped_column(String(32), default="")
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[float] = mapped_column(Float)
    answered_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    end_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    muted: Mapped[bool] = mapped_column(Boolean, default=False)
    held: Mapped[bool] = mapped_column(Boolean, default=False)
    #: "out" (dialled) or "in" (dialled in, issue 15).
    direction: Mapped[str] = mapped_column(String(3), default="out", server_default="out")
    #: The server carrying the call; "" is the meeting's owner (issue 16, migration 0016).
    node: Mapped[str] = mapped_column(String(128), default="", server_default="")

    # Every query starts from the meeting; no index holds the state, so a leg's state changes
    # are HOT updates on PostgreSQL, in the room fillfactor leaves (migration 0014).
    __table_args__ = (
        Index("ix_legs_meeting_phone", "meeting_id", "phone"),
        Index(
            "ix_legs_node",
            "node",
            postgresql_where=text("node != ''"),
            sqlite_where=text("node != ''"),
        ),
        {"postgresql_with": {"fillfactor": 85}},
    )


class EventRow(Base):
    """One push, stored in the transaction of the state change that caused it (the outbox)."""

    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    meeting_id: Mapped[str] = mapped_column(ForeignKey("meetings.id"))
    seq: Mapped[int] = mapped_column(Integer)
    leg_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    app_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    delivery: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    delivered_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    pending_since: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = (
        Index("uq_events_meeting_seq", "meeting_id", "seq", unique=True),
        Index("ix_events_delivery_due", "delivery", "next_attempt_at"),
        Index("ix_events_meeting_leg_seq", "meeting_id", "leg_id", "seq"),
    )


class IdempotencyRow(Base):
    """The first accepted answer to an Idempotency-Key (spec §6.7); `response` is NULL while the
    request that claimed the key is still running."""

    __tablename__ = "idempotency_keys"

    account_sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    claimed_at: Mapped[float] = mapped_column(Float)


class OrderRow(Base):
    """One carrier order (dial, hang up, mute, end…), written with the change that causes it and
    deleted by the media node that carries it out (the outbox for orders)."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    meeting_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    #: The server the order is for; "" is the meeting's owner when it is claimed (issue 16).
    node: Mapped[str] = mapped_column(String(128), default="", server_default="")

    __table_args__ = (
        Index("ix_orders_meeting", "meeting_id", "id"),
        Index(
            "ix_orders_node",
            "node",
            "id",
            postgresql_where=text("node != ''"),
            sqlite_where=text("node != ''"),
        ),
    )


class MeetingSpanRow(Base):
    """A server other than its owner that a meeting is extended to (issue 16): the server's
    end of the cascade link to the meeting's home. Removed when the server's part ends."""

    __tablename__ = "meeting_spans"

    meeting_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    node: Mapped[str] = mapped_column(String(128), primary_key=True)
    host: Mapped[str] = mapped_column(String(64), default="", server_default="")
    port: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_meeting_spans_node", "node"),)


class NodeRow(Base):
    """A running server process: its roles, and a heartbeat that is its lease on its meetings."""

    __tablename__ = "nodes"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    roles: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(256), default="", server_default="")
    started_at: Mapped[float] = mapped_column(Float)
    heartbeat_at: Mapped[float] = mapped_column(Float)


class RateDemandRow(Base):
    """How many requests per second an API process has recently seen from an account: the
    processes split each account's rate limit in proportion (api/ratelimit.py)."""

    __tablename__ = "rate_demand"

    node_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    account_sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    demand: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class CdrRow(Base):
    """One leg's CDR as pushed (`body`, the JSON of the `cdr` entry) and its charge, written in
    the transaction that ended the leg; `id` orders the CDR pull (CallCdr.wx). Rows are written
    under the account's row lock, so an account's ids are in commit order (store/cdrs.py)."""

    __tablename__ = "cdrs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_sid: Mapped[str] = mapped_column(String(64))
    app_id: Mapped[str] = mapped_column(String(64))
    #: The app's environment: each listener pulls its own environment's CDRs.
    env: Mapped[str] = mapped_column(String(16))
    meeting_id: Mapped[str] = mapped_column(String(32))
    leg_id: Mapped[str] = mapped_column(String(32), unique=True)
    requestid: Mapped[str] = mapped_column(String(40))
    #: The phone dialled: with `requestid` it names one CDR (one request dials a phone once).
    called: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    charge: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    created_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        Index("ix_cdrs_account_env_id", "account_sid", "env", "id"),
        Index("ix_cdrs_account_env_created", "account_sid", "env", "created_at"),
        Index("ix_cdrs_account_requestid", "account_sid", "requestid"),
    )


class LedgerRow(Base):
    """Every change to an account's balance: who, when, why, how much, and the balance after."""

    __tablename__ = "ledger"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_sid: Mapped[str] = mapped_column(String(64))
    at: Mapped[float] = mapped_column(Float)
    amount: Mapped[float] = mapped_column(Float)
    balance_after: Mapped[float | None] = mapped_column(Float, nullable=True)
    reason: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128), default="", server_default="")
    reference: Mapped[str] = mapped_column(String(64), default="", server_default="")

    __table_args__ = (Index("ix_ledger_account_id", "account_sid", "id"),)
