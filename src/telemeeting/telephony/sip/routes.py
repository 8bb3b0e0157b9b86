"""Which trunk dials a number: `[[sip.routes]]` regexes, first match wins (spec: configuration)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from telemeeting.telephony.sip.uri import escape_user


class RouteSettings(Protocol):
    """What config.SipRoute provides; plain objects with these attributes work too."""

    match: str
    target: str
    username: str
    password: str


@dataclass(frozen=True)
class RouteConfig:
    """A plain, picklable route (what crosses into a media node process)."""

    match: str
    target: str
    username: str = ""
    password: str = ""

    @classmethod
    def of(cls, route: RouteSettings) -> RouteConfig:
        return cls(route.match, route.target, route.username, route.password)


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


@dataclass(frozen=True)
class Route:
    pattern: re.Pattern[str]
    target: str
    credentials: Credentials | None = None

    def target_for(self, number: str) -> str:
        """The Request-URI for `number`: the route's template with the number escaped as a
        URI user part (RFC 3261), so the number can never add parameters or headers."""
        return self.target.replace("{number}", escape_user(number))


class RouteTable:
    def __init__(self, routes: Iterable[RouteSettings]) -> None:
        self.routes = [
            Route(
                re.compile(r.match),
                r.target,
                Credentials(r.username, r.password) if r.username else None,
            )
            for r in routes
        ]

    def find(self, number: str) -> Route | None:
        for route in self.routes:
            if route.pattern.search(number):
                return route
        return None
