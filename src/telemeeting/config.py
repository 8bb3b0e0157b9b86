"""Configuration: one TOML file plus `TELEMEETING_<SECTION>_<KEY>` environment variables.

Precedence, highest first: command-line flags, environment variables, the TOML file, defaults.
Every key is documented in docs/configuration.md.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import tomllib
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8880
    sandbox_port: int = 8881
    trusted_proxies: list[str] = Field(default_factory=list)
    #: "listener" (by port) or "host" (a Host whose first label is `sandbox` is the sandbox).
    environment_by: str = "listener"
    #: This server's stable name among several sharing a database; default `hostname:port`.
    node_id: str = ""
    #: Event loop: "auto" (uvloop when installed, else asyncio), "uvloop" or "asyncio".
    loop: Literal["auto", "uvloop", "asyncio"] = "auto"
    #: HTTP/1.1 parser: "auto" (httptools when installed, else h11), "httptools" or "h11".
    http: Literal["auto", "httptools", "h11"] = "auto"
    #: API requests in flight per process; beyond it the answer is at once -104 (overloaded).
    #: 0: no bound.
    max_in_flight: int = Field(64, ge=0)
    #: A request's headers must be complete this long after its first byte, else the connection
    #: is closed (slowloris: one header byte a second held connections for ever).
    header_timeout_seconds: float = Field(10.0, gt=0)
    #: A request's body must be complete this long after its headers, else the connection is
    #: closed (one info line, `http.client_gone reason=body_timeout`).
    body_timeout_seconds: float = Field(30.0, gt=0)
    #: A connection with no request in progress (new, or after an answer) is closed after this.
    keepalive_seconds: float = Field(5.0, gt=0)
    #: Open connections per API process; a connection beyond it is closed at once. It is lowered
    #: to leave an eighth of the process's file limit (at least 64) to everything else.
    #: 0: no cap (and none derived from the file limit).
    max_connections: int = Field(10000, ge=0)
    #: Open connections per client address (the TCP peer; trusted proxies are not capped) and
    #: API process; beyond it a new connection is closed at once. 0: no cap.
    max_connections_per_address: int = Field(512, ge=0)
    #: Requests per second (token bucket, per client address and API process) that may fail
    #: authentication (-200…-203); an address with no token left gets -104 before the
    #: signature is checked. 0: no limit.
    preauth_rate_per_address: float = Field(20.0, ge=0)
    #: The bucket's size: failures an address may have in a burst.
    preauth_burst_per_address: int = Field(200, ge=1)

    @property
    def node(self) -> str:
        return self.node_id or f"{socket.gethostname()}:{self.port}"

    @field_validator("environment_by")
    @classmethod
    def _known_mode(cls, value: str) -> str:
        if value not in ("listener", "host"):
            raise ValueError("environment_by must be 'listener' or 'host'")
        return value


class DatabaseSettings(BaseModel):
    url: str = "sqlite+aiosqlite:///./telemeeting.db"


class AuthSettings(BaseModel):
    timestamp_window_seconds: float = 86400
    timezone: str = "Asia/Shanghai"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        ZoneInfo(value)
        return value


class LimitSettings(BaseModel):
    requests_per_second: float = 50
    burst: int = 100


class MeetingSettings(BaseModel):
    default_max_members: int = Field(100, ge=1, le=1000)
    max_duration_seconds: float = 14400
    #: A booking further ahead than this is -101 (a year 9999 booktime was accepted).
    booking_horizon_days: float = Field(366, gt=0)
    #: **extension** `createMeeting` `beep` when not given: 0 none, 1 join, 2 leave, 3 both.
    beep: int = Field(3, ge=0, le=3)


class SimSettings(BaseModel):
    ring_seconds: float = 1.0
    ring_timeout_seconds: float = 30.0


class CallbackSettings(BaseModel):
    timeout_seconds: float = 10
    retry_initial_seconds: float = 1
    retry_max_seconds: float = 600
    give_up_after_seconds: float = 86400


class SipRoute(BaseModel):
    match: str
    target: str
    username: str = ""
    password: str = ""


class SipDialIn(BaseModel):
    """**extension** (issue 15): a number callers dial to join meetings."""

    #: The called number as the trunk sends it (the Request-URI's user part, else the To's).
    number: str
    #: A meeting number this dial-in number always joins (callers then key only the PIN);
    #: empty: the IVR asks for the meeting number.
    meid: str = ""

    @field_validator("number")
    @classmethod
    def _number(cls, value: str) -> str:
        if not _DIALIN_NUMBER.fullmatch(value):
            raise ValueError("a dial-in number is 1-32 of 0-9, +, *, #")
        return value

    @field_validator("meid")
    @classmethod
    def _meid(cls, value: str) -> str:
        if value and not _DIALIN_MEID.fullmatch(value):
            raise ValueError("a dial-in meid is 1-32 digits")
        return value


_DIALIN_NUMBER = re.compile(r"[0-9+*#]{1,32}")
_DIALIN_MEID = re.compile(r"[0-9]{1,32}")


class SipSettings(BaseModel):
    local_host: str = "127.0.0.1"
    local_port: int = 5060
    rtp_port_min: int = 20000
    rtp_port_max: int = 29999
    #: An unanswered call is cancelled after this long (then 未应答|无应答).
    ring_timeout_seconds: float = 30.0
    routes: list[SipRoute] = Field(default_factory=list)
    #: **extension** (issue 15): numbers callers dial in on.
    dialin: list[SipDialIn] = Field(default_factory=list)
    #: Addresses and CIDRs whose INVITEs are accepted (the trunk, the edge proxy); every other
    #: INVITE gets 403. Empty: no inbound call is accepted.
    trusted_sources: list[str] = Field(default_factory=list)
    #: The IVR's language: "zh" (Mandarin, spoken by espeak-ng's cmn voice) or "en".
    ivr_language: Literal["zh", "en"] = "zh"

    @field_validator("trusted_sources")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            text = item.strip()
            if not text or any(ord(c) < 32 for c in text):
                raise ValueError(f"trusted source {item!r} is not an address or CIDR")
            try:
                ipaddress.ip_network(text, strict=False)
            except ValueError as exc:
                raise ValueError(f"trusted source {item!r} is not an address or CIDR") from exc
        return [item.strip() for item in value]

    @field_validator("dialin")
    @classmethod
    def _distinct(cls, value: list[SipDialIn]) -> list[SipDialIn]:
        numbers = [entry.number for entry in value]
        if len(set(numbers)) != len(numbers):
            raise ValueError("a dial-in number is listed twice")
        return value


class MediaSettings(BaseModel):
    #: Media node processes (each owns whole meetings); one per core is the most useful.
    workers: int = Field(1, ge=1, le=64)
    #: A leg that sends no RTP for this long is hung up (呼叫失败).
    rtp_timeout_seconds: float = 30.0
    #: An extension's digits start this long after answer …
    extension_delay_seconds: float = 1.0
    #: … each digit lasts this long, with this gap between digits.
    dtmf_tone_seconds: float = 0.16
    dtmf_gap_seconds: float = 0.1


class PlacementSettings(BaseModel):
    """Where a meeting's legs go among the media worker processes of one server (issue 16;
    docs/telephony.md, Cascading)."""

    #: A meeting's legs fill its node up to this many; the next leg is dialled from the least
    #: loaded other worker, linked to the meeting's nodes. One process mixes ~500 members at
    #: most (docs/performance.md): 400 leaves room for late ticks, links and other meetings.
    max_legs_per_node: int = Field(400, ge=1, le=100000)


class BillingSettings(BaseModel):
    """What answered time costs on production apps (docs/api.md, Billing)."""

    #: Answered time is charged per started unit of this many seconds …
    unit_seconds: int = Field(60, ge=1)
    #: … at this price per unit (an account's own price overrides it).
    price_per_unit: float = Field(0.06, ge=0)


class RecordingsSettings(BaseModel):
    """Meeting recordings (docs/api.md, Recording): where they are kept, for how long, and how
    their download links are made."""

    #: Recordings are written here (a WAV while recording, then an MP3 and a .json sidecar);
    #: every media node and API process of one host must see the same directory.
    directory: str = "./recordings"
    #: `telemeeting recordings purge` deletes recordings started longer ago than this.
    retention_days: float = Field(30, gt=0)
    #: The scheme, host and port download links start with; default http://{server.host}:{server.port}.
    public_url: str = ""
    #: The HMAC key of download links. Empty: derived from the database URL (set one in
    #: production: anyone who knows the database URL could sign links).
    secret: str = ""
    #: How long the links queryMeeting hands out stay valid (CDR links last the retention).
    url_seconds: float = Field(86400, gt=0)


class RetentionSettings(BaseModel):
    """How long ended meetings' rows are kept (docs/operations.md, Retention). CDRs and the
    ledger are kept regardless: they are the bill and the CDR pull."""

    #: An ended meeting's row, legs, delivered pushes and leftover orders go this many days after
    #: it ended; 0 keeps them forever. The clock role prunes; `telemeeting prune` on demand.
    ended_meetings_days: float = Field(30, ge=0)
    #: Meetings pruned per transaction.
    batch: int = Field(500, ge=1, le=10000)
    #: How often the clock role prunes (and the pause between its batches, a tenth of a second).
    interval_seconds: float = Field(300, gt=0)
    #: PostgreSQL: how often the clock role vacuums tables with many dead rows (orders, legs,
    #: meetings, pushes…) when autovacuum has not; 0: never (leave it to autovacuum).
    vacuum_seconds: float = Field(30, ge=0)


class PromptSettings(BaseModel):
    """playMeetingPrompt's `url` (docs/api.md, Prompts): the server fetches it, so by default
    it refuses hosts that resolve to loopback, private, link-local, multicast, reserved or
    unspecified addresses (a request must not reach the operator's internal network)."""

    #: Allow such addresses (tests, or an on-premises server fetching from its own network).
    allow_private_urls: bool = False


class ClusterSettings(BaseModel):
    """Several processes or machines sharing one PostgreSQL database (docs/operations.md)."""

    #: A media node whose heartbeat is older than this has died: its meetings are taken over.
    lease_seconds: float = Field(10.0, gt=0)
    #: How often each node renews its lease (and media nodes look for expired ones).
    heartbeat_seconds: float = Field(2.0, gt=0)


class ConsoleSettings(BaseModel):
    """The web console (docs/console.md): its own listener, never the API's."""

    host: str = "127.0.0.1"
    #: 0: no console.
    port: int = Field(8882, ge=0, le=65535)
    #: A session unused for this long ends (the holder or operator logs in again).
    idle_minutes: float = Field(30, gt=0)
    #: Failed logins allowed per client address (and per user name) within the window …
    login_attempts: int = Field(5, ge=1)
    #: … of this many seconds; further attempts are refused until the window has passed.
    login_window_seconds: float = Field(300, gt=0)
    #: Mark the session cookie Secure (set it when a TLS reverse proxy fronts the console).
    secure_cookies: bool = False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TELEMEETING_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        case_sensitive=False,
        extra="ignore",
    )

    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    meetings: MeetingSettings = Field(default_factory=MeetingSettings)
    sim: SimSettings = Field(default_factory=SimSettings)
    callbacks: CallbackSettings = Field(default_factory=CallbackSettings)
    sip: SipSettings = Field(default_factory=SipSettings)
    media: MediaSettings = Field(default_factory=MediaSettings)
    placement: PlacementSettings = Field(default_factory=PlacementSettings)
    billing: BillingSettings = Field(default_factory=BillingSettings)
    recordings: RecordingsSettings = Field(default_factory=RecordingsSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    prompts: PromptSettings = Field(default_factory=PromptSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file's contents arrive as init kwargs (see load_settings); the environment wins.
        return (env_settings, init_settings)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.auth.timezone)


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Settings from `config_file` (or $TELEMEETING_CONFIG), the environment and `overrides`.

    `overrides` are dicts by section, e.g. `server={"port": 9000}`; None values are ignored.
    """
    path = config_file or os.environ.get("TELEMEETING_CONFIG")
    data: dict[str, Any] = {}
    if path:
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        with file.open("rb") as handle:
            data = tomllib.load(handle)
    settings = Settings(**data)
    for section, values in overrides.items():
        given = {key: value for key, value in values.items() if value is not None}
        if given:
            current = getattr(settings, section)
            updated = type(current).model_validate({**current.model_dump(), **given})
            settings = settings.model_copy(update={section: updated})
    return settings
