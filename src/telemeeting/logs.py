"""Structured logs (structlog) to stderr: key=value for people, JSON when asked.

Lines that anyone outside can cause at will (a refused connection, a client gone, a timeout, an
accept error at the file limit) are rate-limited per event name: at most `REPEAT_BURST` lines per
`REPEAT_INTERVAL_SECONDS`, and the first line after a suppressed stretch says how many were left
out (`suppressed=K`). An attacker cannot flood the log, an operator still sees that it happened.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable

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
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
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
