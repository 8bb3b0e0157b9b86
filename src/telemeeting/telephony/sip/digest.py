"""HTTP digest authentication for SIP (RFC 2617 / RFC 3261 §22): MD5, with or without qop=auth.

Trunks challenge INVITEs with 401 (WWW-Authenticate) or, as proxies, 407 (Proxy-Authenticate);
the retry carries Authorization or Proxy-Authorization respectively.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from telemeeting.telephony.sip.errors import SipError


class UnsupportedChallenge(SipError):
    """A scheme or algorithm we cannot answer (e.g. SHA-256, auth-int only)."""


@dataclass(frozen=True)
class Challenge:
    realm: str
    nonce: str
    opaque: str | None = None
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    stale: bool = False

    @classmethod
    def parse(cls, value: str) -> Challenge:
        scheme, _, rest = value.strip().partition(" ")
        if scheme.lower() != "digest":
            raise UnsupportedChallenge(f"scheme {scheme!r}")
        params = parse_auth_params(rest)
        if "nonce" not in params:
            raise UnsupportedChallenge("no nonce")
        return cls(
            realm=params.get("realm", ""),
            nonce=params["nonce"],
            opaque=params.get("opaque"),
            algorithm=params.get("algorithm", "MD5"),
            qop=tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip()),
            stale=params.get("stale", "").lower() == "true",
        )


def parse_auth_params(text: str) -> dict[str, str]:
    """`a="x, y", b=z` to a dict with lower-cased keys, honouring quoted commas."""
    params: dict[str, str] = {}
    index, length = 0, len(text)
    while index < length:
        while index < length and text[index] in " ,\t":
            index += 1
        eq = text.find("=", index)
        if eq < 0:
            break
        key = text[index:eq].strip().lower()
        index = eq + 1
        if index < length and text[index] == '"':
            end = index + 1
            while end < length and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            params[key] = text[index + 1 : end].replace('\\"', '"')
            index = end + 1
        else:
            end = text.find(",", index)
            end = length if end < 0 else end
            params[key] = text[index:end].strip()
            index = end
    return params


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def response_digest(
    challenge: Challenge,
    method: str,
    uri: str,
    username: str,
    password: str,
    cnonce: str = "",
    nc: int = 1,
) -> str:
    if challenge.algorithm.upper() not in ("MD5", ""):
        raise UnsupportedChallenge(f"algorithm {challenge.algorithm!r}")
    ha1 = _md5(f"{username}:{challenge.realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    if "auth" in challenge.qop:
        return _md5(f"{ha1}:{challenge.nonce}:{nc:08x}:{cnonce}:auth:{ha2}")
    if challenge.qop:
        raise UnsupportedChallenge(f"qop {challenge.qop!r}")
    return _md5(f"{ha1}:{challenge.nonce}:{ha2}")


def authorization(
    challenge: Challenge,
    method: str,
    uri: str,
    username: str,
    password: str,
    cnonce: str | None = None,
    nc: int = 1,
) -> str:
    """The Authorization / Proxy-Authorization header value answering `challenge`."""
    cnonce = cnonce or secrets.token_hex(8)
    digest = response_digest(challenge, method, uri, username, password, cnonce, nc)
    parts = [
        f'username="{username}"',
        f'realm="{challenge.realm}"',
        f'nonce="{challenge.nonce}"',
        f'uri="{uri}"',
        f'response="{digest}"',
        "algorithm=MD5",
    ]
    if "auth" in challenge.qop:
        parts += ["qop=auth", f'cnonce="{cnonce}"', f"nc={nc:08x}"]
    if challenge.opaque is not None:
        parts.append(f'opaque="{challenge.opaque}"')
    return "Digest " + ", ".join(parts)
