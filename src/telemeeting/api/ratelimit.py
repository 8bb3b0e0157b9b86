"""The per-account rate limit (spec §3 step 7), held across every API process of a cluster.

Each process keeps a token bucket per account, sized to its *share* of the account's limit:
`rate × share` per second, `burst × share` at once. Every `SYNC_SECONDS` each process publishes
how many requests per second it has recently seen from each account (its demand) and reads the
cluster's totals; its share is its demand over the total. No request waits for the database.

Error bound: the shares lag the traffic by at most one sync interval plus the demand average's
memory, so when an account's traffic moves between processes, the cluster may admit up to about
`rate × SYNC_SECONDS` extra (or fewer) requests while the shares catch up; in steady traffic the
shares sum to 1 and the cluster admits the configured rate (tests hold it within 10 %). An
account a process has not heard of gets an equal share among the live API processes until the
next sync; every process keeps at least a tenth of an equal share (so a process where an
account's traffic has just moved is never starved), which can add up to 10 % to the rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: How often a process publishes its demand and reads the cluster's.
SYNC_SECONDS = 0.5
#: The least share of an equal split a process keeps (see `set_shares`).
SHARE_FLOOR = 0.1
#: Weight of the newest interval in the demand average.
_NEWEST = 0.5


class RateLimiter:
    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = float(max(1, burst))
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)
        self._shares: dict[str, float] = {}
        self._default_share = 1.0
        self._seen: dict[str, int] = {}  # requests per key since the last sync
        self._demand: dict[str, float] = {}  # requests per second, averaged

    def allow(self, key: str) -> bool:
        if self._rate <= 0:
            return True
        self._seen[key] = self._seen.get(key, 0) + 1
        share = self._shares.get(key, self._default_share)
        capacity = max(1.0, self._burst * share)
        now = self._clock()
        tokens, last = self._buckets.get(key, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * self._rate * share)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        return True

    # ---- the cluster ----------------------------------------------------------------------

    def demand(self, interval: float) -> dict[str, float]:
        """This process's request rate per account, folding in what arrived since last time."""
        keys = set(self._seen) | set(self._demand)
        for key in keys:
            newest = self._seen.get(key, 0) / max(interval, 1e-3)
            self._demand[key] = _NEWEST * newest + (1 - _NEWEST) * self._demand.get(key, 0.0)
        self._seen.clear()
        self._demand = {key: rate for key, rate in self._demand.items() if rate >= 0.01}
        return dict(self._demand)

    def set_shares(self, totals: dict[str, float], api_processes: int) -> None:
        """The cluster's demand per account (this process's included) and its API process count."""
        processes = max(1, api_processes)
        self._default_share = 1.0 / processes
        # Every process keeps at least a tenth of an equal share, so that a process whose
        # traffic for an account has just started is not starved until the next sync; at most
        # this adds 10 % to the cluster's rate.
        floor = SHARE_FLOOR / processes
        shares = {}
        for key, total in totals.items():
            mine = self._demand.get(key, 0.0)
            if total > 0:
                shares[key] = max(floor, min(1.0, mine / total))
        self._shares = shares
