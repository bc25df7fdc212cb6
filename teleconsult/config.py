"""Settings: one typed object built from defaults, an optional TOML file and ``TELECONSULT_*`` variables.

This is the only module that reads the environment. The object is built once (by the CLI or a test) and passed
down to ``create_app``; nothing else looks settings up on its own.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints
from urllib.parse import urlsplit

from teleconsult.forwarding import LOOPBACK, Network, parse_networks

ENV_PREFIX = "TELECONSULT_"


class ConfigError(ValueError):
    """A setting is missing, ill-typed or unsafe."""


@dataclass(frozen=True, slots=True)
class IceServer:
    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Where and how the server listens, who it trusts in front of it, where it keeps its files."""

    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("var")
    demo: bool = False
    #: The address patients reach (used in emailed links and to check Origins); defaults to the served address.
    public_url: str = ""
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: Generate a self-signed certificate into certs/ when serving off loopback without one.
    self_signed: bool = False
    behind_proxy: bool = False
    #: Behind --behind-proxy: the proxies whose forwarding header is believed (addresses or networks); loopback
    #: when empty. The client is the right-most address in that header that is not one of them.
    trusted_proxies: tuple[str, ...] = ()
    #: The header those proxies set: x-forwarded-for (nginx's $proxy_add_x_forwarded_for) or forwarded (RFC 7239).
    forwarded_header: str = "x-forwarded-for"
    #: Client addresses /metrics answers (after the trusted proxies); others get 404.
    metrics_from: tuple[str, ...] = ("127.0.0.0/8", "::1")
    certs_dir: Path = Path("certs")
    #: The event loop ``serve`` runs on: uvloop (libuv's, the default) or asyncio (the standard library's).
    event_loop: str = "uvloop"
    #: Key for HMACs (CSRF tokens, sealing); read from data_dir/secret_key (generated) when empty.
    secret_key: str = ""
    log_level: str = "INFO"

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert is not None or self.self_signed

    @property
    def scheme(self) -> str:
        return "https" if self.tls_enabled or self.behind_proxy else "http"

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def secure_cookies(self) -> bool:
        return self.tls_enabled or self.behind_proxy

    @property
    def reached_over_tls(self) -> bool:
        """Patients reach the server over HTTPS (its own TLS, or TLS ended at the proxy)."""
        return self.base_url.startswith("https://")

    @property
    def trusted_networks(self) -> tuple[Network, ...]:
        return networks(self.trusted_proxies) if self.trusted_proxies else LOOPBACK

    @property
    def metrics_networks(self) -> tuple[Network, ...]:
        return networks(self.metrics_from)

    @property
    def origins(self) -> frozenset[str]:
        """The ``scheme://host[:port]`` a browser's Origin may name: the public URL; serving on loopback without
        one, the loopback names of the port too (``localhost`` and ``127.0.0.1`` are the same server)."""
        allowed = {_origin(self.base_url)}
        if not self.public_url and is_loopback(self.host):
            allowed |= {f"{self.scheme}://{name}:{self.port}" for name in ("localhost", "127.0.0.1", "[::1]")}
        return frozenset(allowed)

    def check_serving(self) -> None:
        """Refuse to serve a non-loopback address in clear text (DESIGN.md), or without the public address."""
        if self.tls_cert is not None and self.tls_key is None:
            raise ConfigError("tls_cert is set without tls_key")
        if not (is_loopback(self.host) or self.tls_enabled or self.behind_proxy):
            raise ConfigError(
                f"refusing to serve {self.host} without TLS: give --tls-cert/--tls-key, --self-signed, "
                "or --behind-proxy when TLS ends at a reverse proxy"
            )
        if self.behind_proxy and not self.public_url:
            raise ConfigError(
                "--behind-proxy needs public_url (TELECONSULT_PUBLIC_URL): the address patients reach, used in links "
                "and to check where requests come from"
            )
        if not self.public_url and self.host in WILDCARDS:
            raise ConfigError(f"serving on {self.host} needs public_url: the address patients reach")


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    #: SQLAlchemy async URL; defaults to a SQLite file under data_dir.
    database_url: str = ""


@dataclass(frozen=True, slots=True)
class BusSettings:
    #: Redis for the bus between nodes (scale-out); empty for the in-process bus.
    redis_url: str = ""


@dataclass(frozen=True, slots=True)
class MailSettings:
    #: smtp://user:pass@host:587 (STARTTLS when offered), smtps://host:465, or empty for files in data_dir/outbox.
    smtp_url: str = ""
    mail_from: str = "Teleconsult <no-reply@teleconsult.localhost>"
    #: Retries back off from this delay, doubling, up to an hour; after mail_give_up_s a mail is marked failed.
    mail_retry_base_s: float = 30.0
    mail_give_up_s: int = 24 * 3600
    mail_timeout_s: float = 20.0


@dataclass(frozen=True, slots=True)
class AccessSettings:
    """Sessions, tickets, links and their limits."""

    session_ttl_s: int = 12 * 3600
    ticket_ttl_s: int = 60
    invitation_ttl_unscheduled_s: int = 7 * 24 * 3600
    invitation_ttl_after_scheduled_s: int = 24 * 3600
    login_max_failures: int = 5
    login_window_s: int = 900
    #: Requests per minute one client address may make to the link endpoints (GET /j/{token}, POST /api/join).
    link_rate_per_min: int = 30


@dataclass(frozen=True, slots=True)
class SignalingSettings:
    """Rooms, frames, sockets, resume, and the ICE servers given to clients."""

    guest_seats: int = 0
    resume_grace_s: int = 30
    max_frame_bytes: int = 64 * 1024
    hello_timeout_s: float = 10.0
    heartbeat_s: float = 15.0
    send_queue_frames: int = 256
    #: Frames kept for a peer that dropped, delivered in order when it resumes.
    away_buffer_frames: int = 512
    rate_per_s: float = 50.0
    rate_burst: int = 200
    #: The window over which a client sending at least twice its rate is closed (4429).
    rate_sustained_s: float = 2.0
    #: Sockets one address may hold open before saying hello.
    max_pending_per_ip: int = 20
    reconnect_after_ms: int = 1000
    #: STUN servers given to clients (``stun:host:3478``); none by default: no public STUN server is ever used
    #: unless the operator names one.
    stun_urls: tuple[str, ...] = ()
    #: coturn's URLs (``turn:host:3478?transport=udp``, ``turns:host:443?transport=tcp``): every welcome carries
    #: them with a credential for that peer in coturn's REST scheme (``teleconsult/turn.py``).
    turn_urls: tuple[str, ...] = ()
    #: coturn's ``static-auth-secret`` (``use-auth-secret``); a secret: never logged, never in a repr.
    turn_secret: str = field(default="", repr=False)
    #: How long a TURN credential allows new allocations (an allocation made in time outlives it).
    turn_ttl_s: int = 3600
    ice_servers: tuple[IceServer, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class DocumentsSettings:
    #: Offline escrow keys (``age1…``): every document is also encrypted for them; their private halves stay away.
    escrow_recipients: tuple[str, ...] = ()
    #: The largest file one upload may hold, and what one consultation's documents may hold in all.
    max_document_bytes: int = 50 * 1024 * 1024
    documents_quota_bytes: int = 500 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class BillingSettings:
    #: A TOML file of acts and amounts to use instead of the one shipped (a tariff published between releases);
    #: same format as ``teleconsult/data/acts.toml``.
    acts_file: Path | None = None
    #: An appointment the patient never came into is closed as a no-show this long after its time.
    no_show_after_s: int = 7200


@dataclass(frozen=True, slots=True)
class AuditSettings:
    #: How often the server writes the audit chain's last hash to its log (an anchor for an external log copy).
    audit_anchor_interval_s: float = 3600.0


#: The sections, in the order the README's table lists them. Every field name is unique across sections: it is
#: the setting's name in TOML files and, upper-cased after ``TELECONSULT_``, in the environment.
SECTIONS: dict[str, type[Any]] = {
    "server": ServerSettings,
    "database": DatabaseSettings,
    "bus": BusSettings,
    "mail": MailSettings,
    "access": AccessSettings,
    "signaling": SignalingSettings,
    "documents": DocumentsSettings,
    "billing": BillingSettings,
    "audit": AuditSettings,
}


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting, by section; each service receives the sections it needs."""

    server: ServerSettings = field(default_factory=ServerSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    bus: BusSettings = field(default_factory=BusSettings)
    mail: MailSettings = field(default_factory=MailSettings)
    access: AccessSettings = field(default_factory=AccessSettings)
    signaling: SignalingSettings = field(default_factory=SignalingSettings)
    documents: DocumentsSettings = field(default_factory=DocumentsSettings)
    billing: BillingSettings = field(default_factory=BillingSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)

    @property
    def database_url(self) -> str:
        """The database to use: the configured URL, or the SQLite file under data_dir."""
        return self.database.database_url or f"sqlite+aiosqlite:///{self.server.data_dir / 'teleconsult.db'}"


def setting_names() -> dict[str, str]:
    """Each setting's name and the section that holds it."""
    return {f.name: section for section, kind in SECTIONS.items() for f in fields(kind)}


#: The event loops ``serve`` can run on (``server.event_loop``).
EVENT_LOOPS = ("uvloop", "asyncio")

WILDCARDS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - names, not a bind


@functools.lru_cache(maxsize=32)
def networks(values: tuple[str, ...]) -> tuple[Network, ...]:
    return parse_networks(values)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Defaults, then the TOML file, then the environment, then explicit overrides (the CLI's options)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    file = config_file or (Path(env[ENV_PREFIX + "CONFIG"]) if ENV_PREFIX + "CONFIG" in env else None)
    if file is not None:
        try:
            document = tomllib.loads(file.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {file}: {exc}") from exc
        for key, value in document.items():  # flat names, or grouped under their section ([mail] smtp_url = …)
            if key in SECTIONS and isinstance(value, dict):
                values.update(value)
            else:
                values[key] = value
    for setting in setting_names():
        name = ENV_PREFIX + setting.upper()
        if name in env:
            values[setting] = env[name]
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return build_settings(values)


def build_settings(values: Mapping[str, Any]) -> Settings:
    """Settings from flat names (``smtp_url``, ``guest_seats``…), each put in its section."""
    names = setting_names()
    unknown = set(values) - set(names)
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    sections: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    for name, value in values.items():
        section = names[name]
        hint = get_type_hints(SECTIONS[section])[name]
        sections[section][name] = _convert(name, hint, value)
    settings = Settings(**{section: SECTIONS[section](**given) for section, given in sections.items()})
    _check(settings)
    return settings


def _check(settings: Settings) -> None:
    server = settings.server
    for name in ("trusted_proxies", "metrics_from"):
        try:
            networks(getattr(server, name))
        except ValueError as exc:
            raise ConfigError(f"setting {name}: {exc}") from exc
    if server.forwarded_header not in ("x-forwarded-for", "forwarded"):
        raise ConfigError("setting forwarded_header: x-forwarded-for or forwarded")
    if server.event_loop not in EVENT_LOOPS:
        raise ConfigError(f"setting event_loop: {' or '.join(EVENT_LOOPS)}")
    if server.public_url and urlsplit(server.public_url).scheme not in ("http", "https"):
        raise ConfigError("setting public_url: an http:// or https:// address")
    _check_ice(settings.signaling)


_STUN_URL = re.compile(r"stuns?:(\[[0-9a-fA-F:.]+\]|[\w.-]+)(:\d{1,5})?")
_TURN_URL = re.compile(r"turns?:(\[[0-9a-fA-F:.]+\]|[\w.-]+)(:\d{1,5})?(\?transport=(udp|tcp))?")


def _check_ice(signaling: SignalingSettings) -> None:
    """STUN and TURN URLs as RFC 7064/7065 write them; TURN URLs and coturn's secret come together."""
    for url in signaling.stun_urls:
        if not _STUN_URL.fullmatch(url):
            raise ConfigError(f"setting stun_urls: {url!r} is not stun:host[:port] or stuns:host[:port]")
    for url in signaling.turn_urls:
        if not _TURN_URL.fullmatch(url):
            raise ConfigError(
                f"setting turn_urls: {url!r} is not turn:host[:port][?transport=udp|tcp] or turns:host[:port]…"
            )
    if signaling.turn_urls and not signaling.turn_secret:
        raise ConfigError("setting turn_urls needs turn_secret (coturn's static-auth-secret)")
    if signaling.turn_secret and not signaling.turn_urls:
        raise ConfigError("setting turn_secret is set without turn_urls")
    if not 60 <= signaling.turn_ttl_s <= 24 * 3600:
        raise ConfigError("setting turn_ttl_s: between 60 seconds and a day")


def _convert(name: str, hint: Any, value: Any) -> Any:
    text = str(hint)
    try:
        if name == "ice_servers":
            return _ice_servers(value)
        if hint is bool:
            return _boolean(value)
        if hint is int:
            return int(value)
        if hint is float:
            return float(value)
        if "Path" in text:
            return None if value in (None, "") else Path(value)
        if "tuple[str" in text:
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(item.strip() for item in items if item.strip())
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name}: cannot use {value!r} ({exc})") from exc


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected a boolean")


def _ice_servers(value: Any) -> tuple[IceServer, ...]:
    if isinstance(value, str):
        value = [{"urls": [url]} for url in value.split(",") if url.strip()]
    servers = []
    for item in value:
        urls = item["urls"]
        servers.append(
            IceServer(
                urls=(urls,) if isinstance(urls, str) else tuple(urls),
                username=item.get("username"),
                credential=item.get("credential"),
            )
        )
    return tuple(servers)
