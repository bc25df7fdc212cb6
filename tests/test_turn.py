"""TURN for patients behind firewalls: credentials in coturn's REST scheme (checked against openssl), carried by
every welcome (a resume's too), and a real coturn on loopback relaying two relay-only aiortc peers' media with the
credentials of their welcomes; expired credentials are refused by coturn."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aioice import stun
from aioice.turn import TurnClientUdpProtocol, create_turn_endpoint
from aiortc import RTCConfiguration, RTCIceServer, RTCIceTransportPolicy, RTCPeerConnection
from aiortc.stats import RTCTransportStats

from bench.peers import MediaPeer, negotiate_until
from teleconsult.clock import SYSTEM
from teleconsult.config import ConfigError, IceServer, build_settings, load_settings
from teleconsult.logging import redact
from teleconsult.turn import ice_servers, rest_password, turn_credential
from tests.conftest import unavailable
from tests.helpers import connect, doctor_in_room, drop, join

ROOT = Path(__file__).resolve().parent.parent
SECRET = "north-wing-coturn-secret"
REALM = "teleconsult.test"
#: Computed once, independently: printf '%s' '1767225600:p_Q3bvT0aZ8kLmN2xY' | openssl dgst -sha1 -hmac
#: north-wing-coturn-secret -binary | base64
VECTOR = ("1767225600:p_Q3bvT0aZ8kLmN2xY", "7nvgoBoqbKJ2GJysoNQkR+/jjt0=")
TURN_URLS = ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:443?transport=tcp"]
MEDIA_TIMEOUT_S = 20.0


def openssl_credential(secret: str, username: str) -> str:
    """base64(HMAC-SHA1(secret, username)) as openssl computes it (nothing of ours involved)."""
    if shutil.which("openssl") is None:
        unavailable("openssl is not installed: the independent HMAC needs it")
    digest = subprocess.run(
        ["openssl", "dgst", "-sha1", "-hmac", secret, "-binary"],
        input=username.encode(),
        capture_output=True,
        check=True,
    ).stdout
    encoded = subprocess.run(["openssl", "base64", "-A"], input=digest, capture_output=True, check=True).stdout
    return encoded.decode().strip()


# --- the credential and the servers list ---------------------------------------------------------------------------


def test_the_credential_is_coturns_rest_scheme_on_a_known_vector() -> None:
    username, password = VECTOR
    expiry, peer_id = username.split(":", 1)
    made = turn_credential(SECRET, peer_id, now=datetime.fromtimestamp(int(expiry) - 600, UTC), ttl_s=600)
    assert (made.username, made.password, made.expires_at) == (username, password, int(expiry))
    assert rest_password(SECRET, username) == password == openssl_credential(SECRET, username)


@pytest.mark.parametrize("peer_id", ["p_" + secrets.token_urlsafe(12) for _ in range(3)])
def test_the_credential_matches_openssl_for_any_secret(peer_id: str) -> None:
    secret = secrets.token_urlsafe(24) + "é$!"
    made = turn_credential(secret, peer_id, now=datetime.now(UTC), ttl_s=3600)
    assert made.username == f"{made.expires_at}:{peer_id}"
    assert made.password == openssl_credential(secret, made.username)


def test_a_peer_gets_the_stun_urls_then_turn_with_its_own_credential() -> None:
    signaling = build_settings(
        {"stun_urls": ["stun:stun.example.org:3478"], "turn_urls": TURN_URLS, "turn_secret": SECRET, "turn_ttl_s": 900}
    ).signaling
    now = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    stun_server, turn_server = ice_servers(signaling, "p_abc", now)
    assert stun_server == IceServer(("stun:stun.example.org:3478",))
    expiry = int(now.timestamp()) + 900
    assert turn_server == IceServer(tuple(TURN_URLS), f"{expiry}:p_abc", openssl_credential(SECRET, f"{expiry}:p_abc"))
    assert ice_servers(signaling, "p_other", now)[1].username == f"{expiry}:p_other"


def test_by_default_no_ice_server_at_all() -> None:
    signaling = load_settings(environ={}).signaling
    assert signaling.stun_urls == () and signaling.turn_urls == () and signaling.turn_ttl_s == 3600
    assert ice_servers(signaling, "p_abc", datetime.now(UTC)) == ()


def test_the_settings_from_the_environment_and_the_secret_kept_out_of_reprs() -> None:
    settings = load_settings(
        environ={
            "TELECONSULT_TURN_URLS": " ,".join(TURN_URLS),
            "TELECONSULT_TURN_SECRET": SECRET,
            "TELECONSULT_TURN_TTL_S": "600",
            "TELECONSULT_STUN_URLS": "stun:stun.example.org",
        }
    )
    signaling = settings.signaling
    assert signaling.turn_urls == tuple(TURN_URLS) and signaling.turn_secret == SECRET
    assert signaling.turn_ttl_s == 600 and signaling.stun_urls == ("stun:stun.example.org",)
    assert SECRET not in repr(settings) and SECRET not in str(signaling)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"turn_urls": TURN_URLS}, "needs turn_secret"),
        ({"turn_secret": SECRET}, "without turn_urls"),
        ({"turn_urls": ["https://turn.example.org"], "turn_secret": SECRET}, "turn_urls"),
        ({"turn_urls": ["turn:turn.example.org?transport=sctp"], "turn_secret": SECRET}, "turn_urls"),
        ({"stun_urls": ["stun.l.google.com:19302"]}, "stun_urls"),
        ({"turn_urls": TURN_URLS, "turn_secret": SECRET, "turn_ttl_s": 0}, "turn_ttl_s"),
    ],
)
def test_bad_turn_settings_are_refused_without_naming_the_secret(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as refused:
        build_settings(values)
    assert SECRET not in str(refused.value)


def test_a_credential_never_reaches_a_log_line() -> None:
    made = turn_credential(SECRET, "p_abc", now=datetime.now(UTC), ttl_s=3600)
    line = redact(f"ice servers {made.username} {made.password}, again:{made.password}.")
    assert made.password not in line and line.count("[credential]") == 2


def test_the_call_page_uses_only_the_welcomes_ice_servers() -> None:
    """The browser builds every RTCPeerConnection from welcome.ice_servers, and nowhere names a STUN server."""
    scripts = {path: path.read_text(encoding="utf-8") for path in (ROOT / "web").rglob("*.js")}
    builders = {path.name: text for path, text in scripts.items() if "new RTCPeerConnection" in text}
    assert list(builders) == ["peers.js"]
    assert re.findall(r"new RTCPeerConnection\(([^)]*)\)", builders["peers.js"]) == ["{ iceServers: iceServers || [] }"]
    remotes = (ROOT / "web/static/js/call/remotes.js").read_text(encoding="utf-8")
    assert "this.iceServers = Array.isArray(message.ice_servers) ? message.ice_servers : [];" in remotes
    for path in (ROOT / "web").rglob("*"):
        if path.is_file() and path.suffix in {".js", ".html", ".json", ".css"}:
            text = path.read_text(encoding="utf-8").lower()
            assert not re.search(r"\bstuns?:|\bturns?:[a-z0-9\[]|google\.com", text), path


# --- every welcome --------------------------------------------------------------------------------------------------


def check_turn(welcome: dict[str, Any], *, after: float, before: float, ttl_s: int = 3600) -> tuple[int, str]:
    """The welcome's ice servers: the STUN URL, then TURN with a credential for this peer made between ``after``
    and ``before`` (Unix seconds); its expiry and credential."""
    stun_server, turn_server = welcome["ice_servers"]
    assert stun_server == {"urls": ["stun:stun.example.org:3478"]}
    assert turn_server["urls"] == TURN_URLS
    expiry, peer_id = turn_server["username"].split(":", 1)
    assert peer_id == welcome["peer_id"]
    assert int(after) + ttl_s <= int(expiry) <= before + ttl_s
    assert turn_server["credential"] == openssl_credential(SECRET, turn_server["username"])
    return int(expiry), str(turn_server["credential"])


async def test_every_welcome_carries_turn_credentials_for_its_peer(
    server_with: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    started = time.time()
    _, clients = await server_with(stun_urls=["stun:stun.example.org:3478"], turn_urls=TURN_URLS, turn_secret=SECRET)
    _, _, consultation, doctor = await doctor_in_room(clients)
    patient_http = await clients()
    patient = await connect(patient_http, (await join(patient_http, consultation["patient_link"]))["ticket"])
    await patient.expect("waiting")
    lobby = await doctor.expect("lobby", waiting=bool)
    await doctor.send(type="admit", peer_id=lobby["waiting"][0]["peer_id"])
    await patient.expect("admitted")
    check_turn(doctor.welcome, after=started, before=time.time())
    first_expiry, first_credential = check_turn(patient.welcome, after=started, before=time.time())

    # A resume gets fresh credentials (same peer, later expiry), not the first welcome's.
    await drop(patient)
    SYSTEM.advance(timedelta(seconds=10))
    try:
        resumed = await connect(patient_http, resume=patient.welcome["resume"])
        assert resumed.peer_id == patient.peer_id and resumed.welcome["state"] == "admitted"
        expiry, credential = check_turn(resumed.welcome, after=started + 10, before=time.time() + 10)
    finally:
        SYSTEM.advance(timedelta(seconds=-10))
    assert expiry >= first_expiry + 10 and credential != first_credential
    logged = caplog.text
    for secret in (SECRET, first_credential, credential):
        assert secret not in logged


async def test_without_turn_settings_the_welcome_names_no_server(server_with: Any) -> None:
    _, clients = await server_with()
    _, _, _, doctor = await doctor_in_room(clients)
    assert doctor.welcome["ice_servers"] == []


# --- a real coturn ------------------------------------------------------------------------------------------------


def free_udp_and_tcp_port() -> int:
    """A port free on 127.0.0.1 for both UDP and TCP (coturn listens on both)."""
    for _ in range(50):
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise AssertionError("no port free for both UDP and TCP")


@dataclass
class Coturn:
    port: int
    secret: str
    log: Path
    process: subprocess.Popen[bytes] = field(init=False)
    #: TURN over TLS (what 443 serves in production), and the self-signed certificate clients must trust for it.
    tls_port: int | None = None
    certificate: Path | None = None

    def url(self, transport: str = "udp") -> str:
        if transport == "tls":
            if self.tls_port is None:
                unavailable("openssl is not installed: no certificate for coturn's TLS listener")
            return f"turns:127.0.0.1:{self.tls_port}?transport=tcp"
        return f"turn:127.0.0.1:{self.port}?transport={transport}"

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    async def wait_for_log(self, found: Callable[[str], bool], what: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_text()
            if found(text):
                return text
            assert self.process.poll() is None, f"turnserver exited ({self.process.returncode}):\n{text[-3000:]}"
            assert time.monotonic() < deadline, f"turnserver's log never showed {what}:\n{text[-3000:]}"
            await asyncio.sleep(0.1)


def turnserver_binary() -> str:
    binary = shutil.which("turnserver") or shutil.which("turnserver", path="/usr/bin:/usr/sbin")
    if binary is None:
        unavailable("coturn's turnserver is not installed (apt-get install coturn)")
    assert binary is not None
    return binary


def self_signed(home: Path) -> tuple[Path, Path] | None:
    """A certificate for 127.0.0.1 and its key (None without openssl)."""
    if shutil.which("openssl") is None:
        return None
    certificate, key = home / "cert.pem", home / "key.pem"
    openssl_req = "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=127.0.0.1"
    files = ["-keyout", str(key), "-out", str(certificate)]
    subprocess.run(
        ["openssl", *openssl_req.split(), "-addext", "subjectAltName=IP:127.0.0.1", *files],
        capture_output=True,
        check=True,
    )
    return certificate, key


@contextlib.contextmanager
def running_turnserver(home: Path, args: list[str], server: Coturn) -> Iterator[Coturn]:
    """Start ``turnserver`` with ``args`` (its output in ``server.log``) and wait until it listens; stop it after."""
    with server.log.open("wb") as out:
        server.process = subprocess.Popen(
            [turnserver_binary(), *args], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=home
        )
    process = server.process
    try:
        deadline = time.monotonic() + 10
        ports = [p for p in (server.port, server.tls_port) if p]
        while "Total General servers" not in server.log_text() or not all(_accepts(p) for p in ports):
            assert process.poll() is None, f"turnserver exited ({process.returncode}):\n{server.log_text()[-3000:]}"
            assert time.monotonic() < deadline, f"turnserver did not start:\n{server.log_text()[-3000:]}"
            time.sleep(0.05)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture
def coturn(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Coturn]:
    """coturn on loopback with a shared secret (TURN REST), its own files in tmp_path, no system config; more
    options through indirect parametrization."""
    turnserver_binary()
    home = tmp_path / "coturn"
    home.mkdir()
    (home / "turnserver.conf").write_text("# empty: everything is on the command line\n")
    server = Coturn(free_udp_and_tcp_port(), secrets.token_urlsafe(24), home / "turnserver.log")
    tls: list[str] = ["--no-tls"]
    pem = self_signed(home)
    if pem is not None:
        server.tls_port, server.certificate = free_udp_and_tcp_port(), pem[0]
        tls = [f"--tls-listening-port={server.tls_port}", f"--cert={pem[0]}", f"--pkey={pem[1]}"]
        tls += ["--no-tlsv1", "--no-tlsv1_1"]
    args = [
        "-c",  # this file, not Debian's /etc/turnserver.conf (which sends the log to syslog)
        str(home / "turnserver.conf"),
        f"--listening-port={server.port}",
        "--listening-ip=127.0.0.1",
        "--relay-ip=127.0.0.1",
        "--use-auth-secret",
        f"--static-auth-secret={server.secret}",
        f"--realm={REALM}",
        "--fingerprint",
        *tls,
        "--no-dtls",
        "--no-cli",
        "--cli-password=x",
        "--no-rfc5780",
        "--no-software-attribute",
        "--allow-loopback-peers",  # both peers' relayed addresses are on 127.0.0.1 here; never in production
        "--no-multicast-peers",
        "--relay-threads=1",
        f"--userdb={home / 'turndb'}",
        f"--pidfile={home / 'turnserver.pid'}",
        "--log-file=stdout",
        "--simple-log",
        "--verbose",  # sessions, allocations and their byte counts
        *getattr(request, "param", ()),
    ]
    with running_turnserver(home, args, server) as started:
        yield started


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def relay_only(servers: list[dict[str, Any]]) -> RTCConfiguration:
    """The ICE servers of a welcome, exactly, with the relay transport policy (RFC 9429 ``iceTransportPolicy``:
    no host or server-reflexive candidate is gathered, as for a patient whose firewall only lets TURN out)."""
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(urls=server["urls"], username=server.get("username"), credential=server.get("credential"))
            for server in servers
        ],
        iceTransportPolicy=RTCIceTransportPolicy.RELAY,
    )


class RelayPeer(MediaPeer):
    """bench.peers' media peer, its connection configured from ICE servers (a welcome's) and relay-only."""

    def __init__(self, name: str, servers: list[dict[str, Any]]) -> None:
        super().__init__(name)
        self._unused = self.pc  # MediaPeer's own connection (no ICE server) never negotiates; closed with us
        self.pc = RTCPeerConnection(relay_only(servers))
        self.pc.on("track", self._on_track)

    def candidates(self) -> list[str]:
        return [line for line in self.pc.localDescription.sdp.splitlines() if line.startswith("a=candidate:")]

    def selected_pair(self) -> tuple[str, str]:
        """The (local, remote) candidate types of the pair ICE nominated (aioice's, as aiortc has no getStats
        for it)."""
        transport = self.pc.getSenders()[0].transport.transport
        nominated = transport._connection._nominated  # private: the only place the selected pair is kept
        (pair,) = nominated.values()
        return pair.local_candidate.type, pair.remote_candidate.type

    async def close(self) -> None:
        await super().close()
        await self._unused.close()


def relayed_from(log: str, username: str) -> int:
    """The bytes coturn sent on to peers from ``username``'s allocations (``peer usage … sb=``, logged as each
    allocation closes)."""
    pattern = (
        rf"peer usage: realm=<{re.escape(REALM)}>, username=<{re.escape(username)}>, rp=\d+, rb=\d+, sp=\d+, sb=(\d+)"
    )
    return sum(int(sent) for sent in re.findall(pattern, log))


async def bytes_sent(pc: RTCPeerConnection) -> int:
    """What the peer connection put on the wire (DTLS and SRTP over its one bundled transport)."""
    return sum(stats.bytesSent for stats in (await pc.getStats()).values() if isinstance(stats, RTCTransportStats))


def allocated(log: str, username: str) -> bool:
    return f"user <{username}>: incoming packet ALLOCATE processed, success" in log


@pytest.mark.webrtc
@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
async def test_relay_only_peers_exchange_media_through_coturn(
    coturn: Coturn, server_with: Any, transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Doctor and patient each forced to relay, with the credentials of their welcomes: the call connects and video
    frames arrive, every candidate and the selected pair are relayed, and coturn counted the bytes it carried. Over
    UDP, TCP, and TLS (``turns:``, the firewalled patient's way out on 443)."""
    if transport == "tls":
        url = coturn.url("tls")
        monkeypatch.setenv("SSL_CERT_FILE", str(coturn.certificate))  # aioice verifies coturn's certificate
    else:
        url = coturn.url(transport)
    _, clients = await server_with(turn_urls=[url], turn_secret=coturn.secret)
    _, _, consultation, doctor = await doctor_in_room(clients)
    patient_http = await clients()
    patient = await connect(patient_http, (await join(patient_http, consultation["patient_link"]))["ticket"])
    doctor_media = RelayPeer("doctor", doctor.welcome["ice_servers"])
    patient_media = RelayPeer("patient", patient.welcome["ice_servers"])
    usernames = [peer.welcome["ice_servers"][0]["username"] for peer in (doctor, patient)]
    try:
        await patient.expect("waiting")
        lobby = await doctor.expect("lobby", waiting=bool)
        await doctor.send(type="admit", peer_id=lobby["waiting"][0]["peer_id"])
        await patient.expect("admitted")
        await patient.send(type="offer", to=doctor.peer_id, sdp=await patient_media.offer())
        await negotiate_until(doctor, doctor_media, "offer")  # the doctor answers through the relay
        await negotiate_until(patient, patient_media, "answer")

        async with asyncio.timeout(MEDIA_TIMEOUT_S):
            received = await asyncio.gather(doctor_media.video_frames(30), patient_media.video_frames(30))
        for frames in received:
            assert all(frame.width > 0 for frame in frames)
            assert bytes(frames[0].planes[0]) != bytes(frames[-1].planes[0]), "the picture should move"
        for media in (doctor_media, patient_media):
            assert media.pc.connectionState == "connected"
            assert media.candidates() and all(" typ relay " in line for line in media.candidates()), media.candidates()
            assert media.selected_pair() == ("relay", "relay")
        log = coturn.log_text()
        for username in usernames:
            assert allocated(log, username), username
            if transport == "tls":  # coturn names the TLS version of the session it allocated on
                assert re.search(
                    rf"username=<{re.escape(username)}>, lifetime=\d+, cipher=\S+, method=TLSv1\.[23]", log
                )
        sent = {
            username: await bytes_sent(media.pc)
            for username, media in zip(usernames, (doctor_media, patient_media), strict=True)
        }
        assert all(count > 20_000 for count in sent.values()), sent
    finally:
        await asyncio.gather(doctor_media.close(), patient_media.close())
        await asyncio.gather(doctor.ws.close(), patient.ws.close())

    # Closing releases the allocations, and coturn logs what it relayed for each: at least every byte each peer had
    # sent by then. All of the media went through coturn.
    await coturn.wait_for_log(
        lambda text: all(relayed_from(text, username) >= count for username, count in sent.items()),
        f"relayed bytes covering what the peers sent {sent}",
    )


async def test_expired_credentials_are_refused_by_coturn(coturn: Coturn, server_with: Any) -> None:
    _, clients = await server_with(turn_urls=[coturn.url()], turn_secret=coturn.secret)
    _, _, _, doctor = await doctor_in_room(clients)
    fresh = doctor.welcome["ice_servers"][0]
    expired = turn_credential(coturn.secret, doctor.peer_id, now=datetime.now(UTC) - timedelta(hours=2), ttl_s=3600)
    assert expired.expires_at < time.time()
    server = ("127.0.0.1", coturn.port)

    # A raw Allocate: the welcome's credential gets a relayed address; the expired one and a wrong secret get 401.
    relayed, _ = await create_turn_endpoint(asyncio.DatagramProtocol, server, fresh["username"], fresh["credential"])
    try:
        assert relayed.get_extra_info("sockname")[0] == "127.0.0.1"
    finally:
        relayed.close()
    forged = turn_credential("not-the-secret", doctor.peer_id, now=datetime.now(UTC), ttl_s=3600)
    for username, password in ((expired.username, expired.password), (forged.username, forged.password)):
        with pytest.raises(stun.TransactionFailed) as refused:
            await create_turn_endpoint(asyncio.DatagramProtocol, server, username, password)
        assert refused.value.response.error_code == 401, refused.value

    # A relay-only peer with the expired credential gathers no candidate at all: it cannot reach anyone.
    stale = RelayPeer("late", [{"urls": [coturn.url()], "username": expired.username, "credential": expired.password}])
    try:
        await stale.offer()
        assert stale.candidates() == []
    finally:
        await stale.close()
    log = await coturn.wait_for_log(
        lambda text: f"user <{expired.username}>: incoming packet message processed, error 401" in text,
        "the expired username refused",
    )
    assert not allocated(log, expired.username)


@pytest.mark.parametrize("coturn", [["--max-allocate-lifetime=6"]], indirect=True)
async def test_an_allocation_outlives_its_credential(coturn: Coturn) -> None:
    """The TTL bounds new allocations only: one made in time is refreshed after its username's expiry (a call
    longer than turn_ttl_s keeps its relay), while a new Allocate with the same credential is refused."""
    server = ("127.0.0.1", coturn.port)
    short = turn_credential(coturn.secret, "p_long_call", now=datetime.now(UTC), ttl_s=3)
    relayed, _ = await create_turn_endpoint(
        asyncio.DatagramProtocol, server, short.username, short.password, lifetime=6
    )
    try:
        # coturn grants 6 s, so aioice refreshes after 5 s: past the credential's expiry.
        await coturn.wait_for_log(
            lambda text: f"user <{short.username}>: incoming packet REFRESH processed, success" in text,
            "a refresh after the expiry",
        )
        assert time.time() > short.expires_at
        with pytest.raises(stun.TransactionFailed) as refused:
            await create_turn_endpoint(asyncio.DatagramProtocol, server, short.username, short.password)
        assert refused.value.response.error_code == 401
    finally:
        relayed.close()


# --- docs/deploy.md's coturn configuration, run ---------------------------------------------------------------------

#: Peers the relay must never reach: private, loopback, shared, link-local (the cloud metadata service), multicast.
INTERNAL_PEERS = [
    ("10.1.2.3", 5432),
    ("172.16.5.4", 6379),
    ("192.168.1.20", 22),
    ("127.0.0.1", 8080),
    ("100.64.0.9", 80),
    ("169.254.169.254", 80),
    ("224.0.0.251", 5353),
]


def deploy_configuration() -> list[str]:
    """The lines of the ``ini`` block of docs/deploy.md's TURN section (comments dropped)."""
    section = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8").split("\n## TURN\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```ini\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


async def test_the_coturn_configuration_in_deploy_md_runs_and_keeps_the_relay_off_internal_networks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """coturn with docs/deploy.md's file (addresses, ports and paths made the test's): every line is taken, the TURN
    URLs and credentials Teleconsult hands out work over UDP and over TLS, and the relay refuses internal peers."""
    lines = deploy_configuration()
    keys = {line.split("=", 1)[0] for line in lines}
    for needed in ("use-auth-secret", "static-auth-secret", "realm", "tls-listening-port", "cert", "pkey"):
        assert needed in keys, needed
    for needed in ("denied-peer-ip", "no-multicast-peers", "user-quota", "total-quota", "min-port", "max-port"):
        assert needed in keys, needed
    assert "allow-loopback-peers" not in keys and "no-auth" not in keys and "lt-cred-mech" not in keys
    assert "listening-port=3478" in lines and "tls-listening-port=443" in lines

    home = tmp_path / "coturn"
    home.mkdir()
    pem = self_signed(home)
    if pem is None:
        unavailable("openssl is not installed: no certificate for coturn's TLS listener")
    assert pem is not None
    server = Coturn(free_udp_and_tcp_port(), secrets.token_urlsafe(24), home / "turnserver.log")
    server.tls_port, server.certificate = free_udp_and_tcp_port(), pem[0]
    ours = {
        "listening-ip": "127.0.0.1",
        "relay-ip": "127.0.0.1",
        "listening-port": str(server.port),
        "tls-listening-port": str(server.tls_port),
        "cert": str(pem[0]),
        "pkey": str(pem[1]),
        "static-auth-secret": server.secret,
    }
    config = []
    for line in lines:
        key = line.split("=", 1)[0]
        if key in ours:
            config.append(f"{key}={ours[key]}")
        elif line != "syslog":  # the log goes to the test's file instead
            config.append(line)
    config += ["log-file=stdout", "simple-log", "verbose", f"userdb={home / 'turndb'}", f"pidfile={home / 'pid'}"]
    (home / "turnserver.conf").write_text("\n".join(config) + "\n", encoding="utf-8")
    realm = next(line.split("=", 1)[1] for line in lines if line.startswith("realm="))

    with running_turnserver(home, ["-c", str(home / "turnserver.conf")], server):
        log = server.log_text()
        assert "Bad configuration format" not in log and "CONFIG ERROR" not in log, log[-3000:]
        signaling = build_settings(
            {"turn_urls": [server.url("udp"), server.url("tls")], "turn_secret": server.secret}
        ).signaling
        (turn_server,) = ice_servers(signaling, "p_deploy", datetime.now(UTC))
        username, password = turn_server.username, turn_server.credential
        assert username is not None and password is not None

        # TURN over TLS with the credential: what a patient who only reaches 443 does.
        monkeypatch.setenv("SSL_CERT_FILE", str(pem[0]))
        tls_relay, _ = await create_turn_endpoint(
            asyncio.DatagramProtocol, ("127.0.0.1", server.tls_port), username, password, ssl=True, transport="tcp"
        )
        tls_relay.close()

        loop = asyncio.get_running_loop()
        address = ("127.0.0.1", server.port)
        _, client = await loop.create_datagram_endpoint(
            lambda: TurnClientUdpProtocol(address, username, password, lifetime=600, channel_refresh_time=500),
            remote_addr=address,
        )
        try:
            await client.connect()
            for number, peer in enumerate(INTERNAL_PEERS, start=0x4000):
                with pytest.raises(stun.TransactionFailed) as refused:
                    await client.channel_bind(number, peer)
                assert refused.value.response.error_code == 403, (peer, refused.value)
            await client.channel_bind(0x4100, ("198.51.100.99", 5000))  # a public address: allowed
        finally:
            await client.delete()
        log = server.log_text()
        assert f"realm=<{realm}>, username=<{username}>" in log
        assert re.search(rf"username=<{re.escape(username)}>, lifetime=\d+, cipher=\S+, method=TLSv1\.[23]", log)
