"""Log lines of one event-loop turn leave in one write, after the turn; lines from outside a
loop, or from a second loop, are written at once; nothing stays pending
(logs.TurnBufferedLogger)."""

from __future__ import annotations

import asyncio
import io
import threading

from telemeeting.logs import TurnBufferedLogger


class _Stream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def test_lines_of_one_turn_are_one_write_after_the_turn() -> None:
    stream = _Stream()
    logger = TurnBufferedLogger(stream)

    async def turn() -> list[str]:
        logger.info("a")
        logger.info("b")
        logger.warning("c")
        during = list(stream.writes)
        await asyncio.sleep(0)  # the turn ends: the flush callback runs
        await asyncio.sleep(0)
        logger.info("d")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return during

    during = asyncio.run(turn())
    assert during == []
    assert stream.writes == ["a\nb\nc\n", "d\n"]


def test_outside_a_loop_each_line_is_written_at_once() -> None:
    stream = _Stream()
    logger = TurnBufferedLogger(stream)
    logger.info("x")
    assert stream.writes == ["x\n"]
    thread = threading.Thread(target=logger.error, args=("from a thread",))
    thread.start()
    thread.join()
    assert stream.getvalue() == "x\nfrom a thread\n"


def test_a_second_loop_does_not_wait_for_the_first() -> None:
    stream = _Stream()
    logger = TurnBufferedLogger(stream)
    first_logged = threading.Event()
    release = threading.Event()

    async def first() -> None:
        logger.info("first")  # the first loop will flush at the end of its turn...
        first_logged.set()
        release.wait(5)  # ...but its turn is held up (a blocking call)

    thread = threading.Thread(target=asyncio.run, args=(first(),))
    thread.start()
    assert first_logged.wait(5)

    async def second() -> None:
        logger.info("second")

    asyncio.run(second())
    # The second loop's line did not wait for the first loop's turn: both are out already.
    assert stream.getvalue() == "first\nsecond\n"
    release.set()
    thread.join()
    assert stream.getvalue() == "first\nsecond\n"


def test_flush_writes_what_is_pending_and_survives_a_closed_stream() -> None:
    stream = _Stream()
    logger = TurnBufferedLogger(stream)

    async def log_and_leave() -> None:
        logger.info("last words")

    loop = asyncio.new_event_loop()
    loop.run_until_complete(log_and_leave())  # the flush callback has not run yet
    loop.close()
    logger.flush()  # what exit does (atexit)
    assert stream.getvalue() == "last words\n"
    stream.close()
    logger.info("after close")  # a line to a closed stream is dropped, not raised
