"""Structured logs (structlog) to stderr: key=value for people, JSON when asked.

Lines that anyone outside can cause at will (a refused connection, a client gone, a timeout, an
accept error at the file limit) are rate-limited per event name: at most `REPEAT_BURST` lines per
`REPEAT_INTERVAL_SECONDS`, and the first line after a suppressed stretch says how many were left
out (`suppressed=K`). An attacker cannot flood the log, an operator still sees that it happened.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

import structlog

#: Events whose lines are rate-limited (see the module docstring); the names are the first word
#: of the line. Every other event, such as one `api.accepted` per request, is always written.
RATE_LIMITED_EVENTS = frozenset(
    {
        "http.accept_failed",
        "http.client_gone",
        "http.connection_refused",
        "http.header_timeout",
        "http.invalid_request",
        "api.preauth_limited",
    }
)
REPEAT_BURST = 5
REPEAT_INTERVAL_SECONDS = 10.0


class RepeatLimiter:
    """At most `burst` lines per key in each window of `interval` seconds; counts the rest.

    Fixed windows: O(1) per line and one small list per key (keys are event names or message
    templates, a handful per process)."""

    def __init__(
        self,
        burst: int = REPEAT_BURST,
        interval: float = REPEAT_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = burst
        self.interval = interval
        self._clock = clock
        #: key -> [window start, lines written in the window, lines suppressed since the last]
        self._state: dict[object, list[float]] = {}

    def admit(self, key: object) -> int | None:
        """None: leave this line out. Otherwise write it, noting the returned number of lines
        left out since the last one written (0: none)."""
        now = self._clock()
        state = self._state.get(key)
        if state is None:
            state = self._state[key] = [now, 0, 0]
        if now - state[0] >= self.interval:
            state[0], state[1] = now, 0
        if state[1] >= self.burst:
            state[2] += 1
            return None
        state[1] += 1
        suppressed = int(state[2])
        state[2] = 0
        return suppressed


_LIMITER = RepeatLimiter()


def limit_repeats(
    _logger: object, _name: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """structlog processor: drop a rate-limited event's line beyond its budget."""
    name = event.get("event")
    if name in RATE_LIMITED_EVENTS:
        suppressed = _LIMITER.admit(name)
        if suppressed is None:
            raise structlog.DropEvent
        if suppressed:
            event["suppressed"] = suppressed
    return event


class RepeatFilter(logging.Filter):
    """The same budget for a standard-library logger's lines (uvicorn's own warnings, such as
    "Invalid HTTP request received.", one per bad request), keyed by the message template."""

    def __init__(self, limiter: RepeatLimiter | None = None) -> None:
        super().__init__()
        self._limiter = limiter or RepeatLimiter()

    def filter(self, record: logging.LogRecord) -> bool:
        suppressed = self._limiter.admit((record.name, record.msg))
        if suppressed is None:
            return False
        if suppressed:
            record.msg = f"{record.msg} (suppressed {suppressed} like it)"
        return True


def limit_stdlib_repeats(*names: str) -> None:
    """Rate-limit the lines of these standard-library loggers (idempotent)."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RepeatFilter) for f in logger.filters):
            logger.addFilter(RepeatFilter())


def configure(level: str = "INFO", json: bool = False) -> None:
    logging.basicConfig(stream=sys.stderr, level=level, format="%(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False) if json else render_line
    )
    structlog.configure(
        processors=[
            limit_repeats,
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=TurnBufferedLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


_PLAIN = re.compile(r"[^\s\"'=]+")  # one character class: linear, no backtracking


def _value(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if _PLAIN.fullmatch(text) else repr(text)


def render_line(_logger: object, _name: str, event: structlog.typing.EventDict) -> str:
    """`time [level] event key=value …` (the look of structlog's ConsoleRenderer without
    colours) at a fifth of its cost: one line is written for every accepted request."""
    timestamp = event.pop("timestamp", "")
    level = event.pop("level", "")
    name = event.pop("event", "")
    exception = event.pop("exception", None)
    line = f"{timestamp} [{level:<9}] {name:<30} " + " ".join(
        f"{key}={_value(value)}" for key, value in event.items()
    )
    return line + "\n" + exception if exception else line.rstrip()


class TurnBufferedLogger:
    """Writes lines to a stream, those of one event-loop turn together in one write.

    Why: structlog's PrintLogger flushes every line, a write() system call each; a serving
    process logs one line per accepted request, so under load that was a system call per
    request beside the answer's own. Here a line logged on a thread running an event loop is
    kept until the end of the loop's current turn (one callback per turn writes them all); a
    line from anywhere else is written at once. What a turn collected is written at exit too,
    so only a process killed outright can lose lines, and only those of its last turn (well
    under a millisecond of them). Standard-library loggers write at once, so within one turn
    their lines may come before structlog's.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._pending: list[str] = []
        #: The loop whose callback will write the pending lines at the end of its turn.
        self._flusher: asyncio.AbstractEventLoop | None = None
        atexit.register(self.flush)

    def msg(self, message: str) -> None:
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self._lock:
            self._pending.append(message)
            if loop is not None and self._flusher in (None, loop):
                if self._flusher is None:
                    self._flusher = loop
                    loop.call_soon(self.flush)
                return
        self.flush()  # outside a loop, or on a loop other than the one that will flush

    def flush(self) -> None:
        """Write every pending line (end of the turn, a line from outside a loop, exit)."""
        with self._lock:
            lines, self._pending = self._pending, []
            self._flusher = None
            if not lines:
                return
            try:
                self._stream.write("\n".join(lines) + "\n")
                self._stream.flush()
            except (OSError, ValueError):  # stderr closed or gone: nothing else to tell
                pass

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


class TurnBufferedLoggerFactory:
    """One TurnBufferedLogger per stream for structlog's `logger_factory`."""

    def __init__(self, stream: TextIO) -> None:
        self._logger = TurnBufferedLogger(stream)

    def __call__(self, *_args: Any) -> TurnBufferedLogger:
        return self._logger
