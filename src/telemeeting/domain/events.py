"""What the domain records as it happens; the service turns these into stored pushes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LegProgressed:
    """A leg reached callout, alerting or answer (`state` is the LegState value)."""

    leg_id: str
    state: str
    at: float


@dataclass(frozen=True)
class LegEnded:
    """A leg's one terminal event (disconnect plus its CDR)."""

    leg_id: str
    at: float


@dataclass(frozen=True)
class MeetingStarted:
    at: float


@dataclass(frozen=True)
class MeetingClosed:
    at: float
    reason: str


DomainEvent = LegProgressed | LegEnded | MeetingStarted | MeetingClosed
