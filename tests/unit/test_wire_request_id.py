"""Request ids (spec §4): 29 digits, starting with the 14-digit timestamp in the zone."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from telemeeting.wire.request_id import RequestIdGenerator

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 28, 6, 30, 15, tzinfo=UTC)  # 14:30:15 in Shanghai


def test_shape():
    rid = RequestIdGenerator(SHANGHAI).next(NOW)
    assert len(rid) == 29
    assert rid.isascii()
    assert rid.isdigit()


def test_starts_with_timestamp_in_the_zone():
    assert RequestIdGenerator(SHANGHAI).next(NOW).startswith("20261128143015")
    assert RequestIdGenerator(ZoneInfo("UTC")).next(NOW).startswith("20261128063015")


def test_node_is_embedded():
    rid = RequestIdGenerator(SHANGHAI, node=42).next(NOW)
    assert rid[14:20] == "000042"


def test_node_is_reduced_to_six_digits():
    assert RequestIdGenerator(SHANGHAI, node=1_000_042).next(NOW)[14:20] == "000042"
    assert len(RequestIdGenerator(SHANGHAI, node=10**12 + 7).next(NOW)) == 29


def test_unique_over_many_calls_in_the_same_second():
    gen = RequestIdGenerator(SHANGHAI)
    ids = [gen.next(NOW) for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert all(len(rid) == 29 and rid.isdigit() for rid in ids)


def test_unique_across_threads():
    gen = RequestIdGenerator(SHANGHAI)
    results: list[list[str]] = [[] for _ in range(8)]

    def work(out: list[str]) -> None:
        for _ in range(2_000):
            out.append(gen.next(NOW))

    threads = [threading.Thread(target=work, args=(out,)) for out in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [rid for out in results for rid in out]
    assert len(ids) == 16_000
    assert len(set(ids)) == len(ids)


def test_two_generators_with_different_nodes_differ():
    a = RequestIdGenerator(SHANGHAI, node=1)
    b = RequestIdGenerator(SHANGHAI, node=2)
    ids_a = {a.next(NOW) for _ in range(1_000)}
    ids_b = {b.next(NOW) for _ in range(1_000)}
    assert ids_a.isdisjoint(ids_b)
    assert {rid[14:20] for rid in ids_a} == {"000001"}
    assert {rid[14:20] for rid in ids_b} == {"000002"}


def test_timestamp_follows_the_clock():
    gen = RequestIdGenerator(SHANGHAI, node=5)
    first = gen.next(NOW)
    later = gen.next(NOW + timedelta(seconds=1))
    assert first[:14] == "20261128143015"
    assert later[:14] == "20261128143016"


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
    ),
    st.integers(min_value=0, max_value=10**9),
)
def test_any_moment_gives_29_digits(moment, node):
    rid = RequestIdGenerator(SHANGHAI, node=node).next(moment)
    assert len(rid) == 29
    assert rid.isdigit()
    assert rid[:14] == moment.astimezone(SHANGHAI).strftime("%Y%m%d%H%M%S")
    assert rid[14:20] == f"{node % 1_000_000:06d}"
