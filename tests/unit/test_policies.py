"""Small policies of our own: retry schedule, rate limiting, caller addresses."""

from __future__ import annotations

import pytest

from telemeeting.api.ratelimit import RateLimiter
from telemeeting.callbacks.policy import RetryPolicy
from telemeeting.network import address_in, client_address, invalid_entries, parse_networks


def test_retry_delays_double_up_to_the_cap() -> None:
    policy = RetryPolicy(initial=1, maximum=600, give_up_after=86400)
    assert [policy.delay(n) for n in range(1, 13)] == [
        1,
        2,
        4,
        8,
        16,
        32,
        64,
        128,
        256,
        512,
        600,
        600,
    ]


def test_retry_gives_up_after_the_window() -> None:
    policy = RetryPolicy(initial=1, maximum=600, give_up_after=100)
    assert policy.next_attempt(1, pending_since=0, now=10) == 11
    assert policy.next_attempt(9, pending_since=0, now=90) == 100  # never beyond the window
    assert policy.next_attempt(9, pending_since=0, now=100) is None


def test_rate_limiter_bucket() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2, burst=3, clock=lambda: now[0])
    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b")  # buckets are per key
    now[0] = 0.5  # one token back
    assert limiter.allow("a") and not limiter.allow("a")
    now[0] = 100.0  # never more than the burst
    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]
    assert all(RateLimiter(rate=0, burst=1).allow("x") for _ in range(100))  # 0 disables


@pytest.mark.parametrize(
    ("address", "spec", "inside"),
    [
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.2", "127.0.0.1", False),
        ("10.1.2.3", "10.0.0.0/8", True),
        ("::ffff:10.1.2.3", "10.0.0.0/8", True),
        ("::1", "127.0.0.1", False),
        ("not-an-ip", "0.0.0.0/0", False),
        ("10.1.2.3", " 192.168.0.0/16 , 10.1.2.3 ", True),
    ],
)
def test_whitelist_membership(address: str, spec: str, inside: bool) -> None:
    assert address_in(address, parse_networks(spec)) is inside


def test_invalid_whitelist_entries_are_named() -> None:
    assert invalid_entries("10.0.0.1, bogus,10.0.0.0/33,::1") == ["bogus", "10.0.0.0/33"]


def test_forwarded_for_only_from_trusted_proxies() -> None:
    trusted = parse_networks("10.0.0.0/8")
    assert client_address("203.0.113.5", "198.51.100.1", trusted) == "203.0.113.5"
    assert client_address("10.0.0.2", "198.51.100.1", trusted) == "198.51.100.1"
    # the right-most untrusted hop wins: a client cannot prepend a fake address
    assert client_address("10.0.0.2", "1.2.3.4, 198.51.100.1, 10.0.0.3", trusted) == "198.51.100.1"
    assert client_address("10.0.0.2", None, trusted) == "10.0.0.2"
