"""Accounts and apps as the service sees them (plain values, no ORM state)."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Account:
    sid: str
    auth_token: str
    name: str
    enabled: bool
    #: None: billing is off (no -204, nothing charged).
    balance: float | None
    created_at: float
    #: None: the configured `[billing] price_per_unit`.
    price_per_unit: float | None = None
    #: How far below zero the balance may go (postpaid); 0 for prepaid.
    credit_limit: float = 0.0


@dataclass(frozen=True)
class App:
    appid: str
    account_sid: str
    env: str
    name: str
    callback_url: str
    ip_whitelist: str
    online: bool
    features: str
    caller_id: str
    created_at: float
    #: IANA name of the zone its clients' wall-clock times are in; "": infer it per request.
    timezone: str = ""

    @property
    def has_meeting_feature(self) -> bool:
        return "meeting" in {f.strip() for f in self.features.split(",")}

    @property
    def zone(self) -> ZoneInfo | None:
        """The operator's explicit zone for this app's clients, if any."""
        return ZoneInfo(self.timezone) if self.timezone else None


@dataclass(frozen=True)
class StoredEvent:
    id: str
    meeting_id: str
    seq: int
    leg_id: str | None
    app_id: str
    kind: str
    body: str
    created_at: float
    delivery: str
    attempts: int
