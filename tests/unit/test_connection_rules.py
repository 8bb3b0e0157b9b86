"""The small rules under the HTTP layer's limits (issue 11, item 4): the log-line budget, the
pre-authentication token buckets, the connection cap under the file limit, what looks like a
method. The behaviour they give a real server is tested in tests/e2e/test_connection_limits.py
and tests/e2e/test_http_edge.py."""

from __future__ import annotations

import logging

from telemeeting.api.connections import effective_max_connections, is_method_token
from telemeeting.api.preauth import AddressBuckets
from telemeeting.logs import RepeatFilter, RepeatLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_repeats_beyond_the_burst_are_left_out_and_counted() -> None:
    clock = Clock()
    limiter = RepeatLimiter(burst=3, interval=10, clock=clock)
    assert [limiter.admit("a") for _ in range(5)] == [0, 0, 0, None, None]
    assert limiter.admit("b") == 0  # another event has its own budget
    clock.now = 10.0
    assert limiter.admit("a") == 2  # the first line of the next window tells how many
    assert limiter.admit("a") == 0


def test_a_standard_library_logger_gets_the_same_budget() -> None:
    clock = Clock()
    repeat = RepeatFilter(RepeatLimiter(burst=1, interval=5, clock=clock))

    def record() -> logging.LogRecord:
        return logging.LogRecord("uvicorn.error", logging.WARNING, "", 0, "Bad %s", ("x",), None)

    assert repeat.filter(record()) and not repeat.filter(record())
    clock.now = 5.0
    later = record()
    assert repeat.filter(later) and later.getMessage() == "Bad x (suppressed 1 like it)"


def test_an_address_without_failures_always_has_a_token() -> None:
    clock = Clock()
    buckets = AddressBuckets(rate=1, burst=2, clock=clock)
    assert buckets.has_token("10.0.0.1")
    buckets.spend("10.0.0.1")
    buckets.spend("10.0.0.1")
    assert not buckets.has_token("10.0.0.1") and buckets.has_token("10.0.0.2")
    clock.now = 1.0
    assert buckets.has_token("10.0.0.1")


def test_the_connection_cap_leaves_part_of_the_file_limit_free() -> None:
    assert effective_max_connections(10_000, 1024) == 1024 - 128
    assert effective_max_connections(10_000, 128) == 64
    assert effective_max_connections(100, 65536) == 100
    assert effective_max_connections(0, 128) == 0  # no cap stays no cap


def test_what_looks_like_a_method() -> None:
    assert is_method_token(b"FOO / HTTP/1.1\r\n")
    assert is_method_token(b"\r\nget / HTTP/1.1")
    assert is_method_token(b"FO")  # the rest has not arrived
    assert not is_method_token(b"\x16\x03\x01\x00")
    assert not is_method_token(b"G\x00T / HTTP/1.1")
    assert not is_method_token(b"A" * 40 + b" / HTTP/1.1")
