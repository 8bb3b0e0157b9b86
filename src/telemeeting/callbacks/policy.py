"""When to try a failed push again, and when to give up (spec §7 Delivery)."""

from __future__ import annotations

from dataclasses import dataclass

from telemeeting.config import CallbackSettings


@dataclass(frozen=True)
class RetryPolicy:
    initial: float = 1.0
    maximum: float = 600.0
    give_up_after: float = 86400.0

    @classmethod
    def from_settings(cls, settings: CallbackSettings) -> RetryPolicy:
        return cls(
            settings.retry_initial_seconds,
            settings.retry_max_seconds,
            settings.give_up_after_seconds,
        )

    def delay(self, attempt: int) -> float:
        """Seconds to wait after the `attempt`-th failure: initial, doubling, capped."""
        return min(self.maximum, self.initial * 2 ** max(0, attempt - 1))

    def next_attempt(self, attempt: int, pending_since: float, now: float) -> float | None:
        """When to try next, or None when the event has been failing for too long."""
        if now - pending_since >= self.give_up_after:
            return None
        return min(now + self.delay(attempt), pending_since + self.give_up_after)
