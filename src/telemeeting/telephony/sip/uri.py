"""SIP URIs and name-addr header values: just the parts a dial-out UA needs to route requests."""

from __future__ import annotations

import string
from dataclasses import dataclass, field

from telemeeting.telephony.sip.errors import SipParseError

#: What a SIP URI's user part carries as it is: RFC 3261 §25.1's `unreserved` and, of its
#: `user-unreserved`, only `+`; every other character is sent %-escaped (its UTF-8 bytes in
#: hex), which the grammar allows for any character. `;`, `?`, `/`, `&`, `=`, `$` and `,` are
#: legal unescaped, but parsers (ours too) read `;` and `?` as the start of parameters.
_USER_SAFE = frozenset(string.ascii_letters + string.digits + "-_.!~*'()+")


def escape_user(text: str) -> str:
    """`text` as a URI's user part. Numbers reach here validated to digits by the API; the
    escaping is what keeps anything else (a trunk's `{number}` template fed by a future
    caller, a configured caller id) from ending the URI or the header early."""
    if all(char in _USER_SAFE for char in text):
        return text
    return "".join(
        char if char in _USER_SAFE else "".join(f"%{byte:02X}" for byte in char.encode())
        for char in text
    )


@dataclass
class SipUri:
    scheme: str
    user: str
    host: str
    port: int | None
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> SipUri:
        text = text.strip()
        scheme, sep, rest = text.partition(":")
        if not sep or scheme.lower() not in ("sip", "sips"):
            raise SipParseError(f"not a SIP URI: {text!r}")
        rest = rest.split("?", 1)[0]
        hostpart, *param_list = rest.split(";")
        user, at, hostport = hostpart.rpartition("@")
        if not at:
            user, hostport = "", hostpart
        host, port = _split_hostport(hostport)
        params = {}
        for item in param_list:
            key, _, value = item.partition("=")
            params[key.lower()] = value
        return cls(scheme.lower(), user, host, port, params)

    @property
    def address(self) -> tuple[str, int]:
        """Where to send: no DNS SRV here, trunks are configured by address."""
        return self.host, self.port or 5060

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        params = "".join(f";{k}={v}" if v else f";{k}" for k, v in self.params.items())
        return f"{self.scheme}:{user}{self.host}{port}{params}"


def _split_hostport(hostport: str) -> tuple[str, int | None]:
    if hostport.startswith("["):  # IPv6 reference
        host, _, tail = hostport[1:].partition("]")
        port = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port = hostport.partition(":")
    if not host:
        raise SipParseError(f"no host in {hostport!r}")
    try:
        return host, int(port) if port else None
    except ValueError as exc:
        raise SipParseError(f"bad port in {hostport!r}") from exc


@dataclass
class NameAddr:
    """`"Display" <sip:uri>;tag=x` or a bare `sip:uri;tag=x` (params then belong to the header)."""

    uri: str
    display: str = ""
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        text = text.strip()
        if "<" in text:
            display, _, rest = text.partition("<")
            uri, _, tail = rest.partition(">")
        else:
            display = ""
            uri, _, tail = text.partition(";")
            tail = ";" + tail if tail else ""
        return cls(uri.strip(), display.strip().strip('"'), parse_params(tail))

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        display = f'"{self.display}" ' if self.display else ""
        params = "".join(f";{k}={v}" if v else f";{k}" for k, v in self.params.items())
        return f"{display}<{self.uri}>{params}"


def parse_params(text: str) -> dict[str, str]:
    """`;a=1;b;c="x"` to a dict with lower-cased keys."""
    params: dict[str, str] = {}
    for item in text.split(";"):
        item = item.strip()
        if item:
            key, _, value = item.partition("=")
            params[key.strip().lower()] = value.strip().strip('"')
    return params
