"""The rate limit split between API processes in proportion to where each account's requests
arrive (api/ratelimit.py), simulated with a fake clock: the cluster admits the configured rate."""

from __future__ import annotations

from telemeeting.api.ratelimit import SYNC_SECONDS, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _run(split: list[float], seconds: float = 20.0, offered: float = 200.0) -> int:
    """Offer `offered` req/s for one account, spread over processes by `split`; count admits."""
    clock = Clock()
    limiters = [RateLimiter(rate=20, burst=20, clock=clock) for _ in split]
    admitted = 0
    step = 1.0 / offered
    next_sync = SYNC_SECONDS
    credit = [0.0] * len(split)
    while clock.now < seconds:
        clock.now += step
        for index, weight in enumerate(split):
            credit[index] += weight
            while credit[index] >= 1.0:
                credit[index] -= 1.0
                admitted += limiters[index].allow("acct")
        if clock.now >= next_sync:
            next_sync += SYNC_SECONDS
            demands = [limiter.demand(SYNC_SECONDS) for limiter in limiters]
            totals: dict[str, float] = {}
            for demand in demands:
                for key, rate in demand.items():
                    totals[key] = totals.get(key, 0.0) + rate
            for limiter in limiters:
                limiter.set_shares(totals, len(limiters))
    return admitted


def test_one_process_admits_burst_plus_rate() -> None:
    admitted = _run([1.0])
    assert 20 + 20 * 20 - 2 <= admitted <= 20 + 20 * 20 + 1


def test_two_processes_hold_the_account_rate_within_ten_percent() -> None:
    expected = 20 + 20 * 20  # the burst, then the rate, as one process would admit
    for split in ([0.5, 0.5], [0.9, 0.1], [1.0, 0.0]):
        admitted = _run(split)
        assert abs(admitted - expected) <= 0.1 * expected, (split, admitted)


def test_without_sharing_two_processes_would_admit_twice_the_rate() -> None:
    clock = Clock()
    limiters = [RateLimiter(rate=20, burst=20, clock=clock) for _ in range(2)]
    admitted = 0
    while clock.now < 20:
        clock.now += 0.005
        admitted += limiters[0].allow("acct") + limiters[1].allow("acct")
    assert admitted > 1.8 * (20 + 20 * 20)  # what the shared budget prevents
