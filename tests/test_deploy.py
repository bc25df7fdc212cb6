"""The repository's own deployment, run: ``deploy/nginx.conf`` (Debian's nginx, the file as it is with its listen
ports, upstream addresses and paths replaced) in front of two real ``teleconsult serve --behind-proxy`` processes on
one PostgreSQL database, one Redis and one data directory, as ``deploy/compose.yaml`` runs them. Every client goes
through the proxy only, and lands on whichever node round robin gives it.

Also the static checks of what cannot run here (no Docker on this machine): ``deploy/compose.yaml`` and
``deploy/Dockerfile`` name only real settings, and agree with ``deploy/nginx.conf``."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import ClientSession, CookieJar, TCPConnector, WSMsgType
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from teleconsult.api.documents import ENVELOPE_BYTES
from teleconsult.config import DocumentsSettings, SignalingSettings, load_settings, setting_names
from teleconsult.crypto.tls import ensure_self_signed
from teleconsult.store.models import AuditEvent
from tests import proxy
from tests.conftest import DOCTOR_EMAIL, DOCTOR_PASSWORD, DOCTOR_RPPS, free_port, in_thread, truncate_all, unavailable
from tests.helpers import Peer, token_of

pytestmark = pytest.mark.postgres

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
NGINX_CONF = DEPLOY / "nginx.conf"
SECRET = "deploy-test-secret"
#: Sockets one address may hold before hello on each node: small, so that the test can tell whether the nodes see
#: each client's own address through the proxy (X-Forwarded-For) or the proxy's.
PENDING_PER_IP = 2
MIB = 1024 * 1024


# --- the proxy: deploy/nginx.conf, rendered -------------------------------------------------------------------


def render(conf: str, *, directory: Path, http: int, https: int, upstreams: tuple[int, int]) -> str:
    """The repository's file with the deployment's ports, addresses and paths replaced by the test's. Each line
    replaced must be there exactly once, so that the file cannot drift from what the test runs."""
    cert, key = ensure_self_signed(directory / "tls", "127.0.0.1")
    temp = "".join(
        f"\n    {kind}_temp_path {directory / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    replacements = {
        "user nginx;": "user root;",
        "pid /var/run/nginx.pid;": f"pid {directory / 'nginx.pid'};",
        "http {": "http {" + temp,
        "listen 80;": f"listen 127.0.0.1:{http};",
        "listen 443 ssl;": f"listen 127.0.0.1:{https} ssl;",
        "server node1:8080 ": f"server 127.0.0.1:{upstreams[0]} ",
        "server node2:8080 ": f"server 127.0.0.1:{upstreams[1]} ",
        "/etc/nginx/tls/fullchain.pem;": f"{cert};",
        "/etc/nginx/tls/privkey.pem;": f"{key};",
        "root /var/www/acme;": f"root {directory / 'acme'};",
    }
    for old, new in replacements.items():
        count = conf.count(old)
        assert count == 1, f"deploy/nginx.conf has {count} of {old!r}: update tests/test_deploy.py with it"
        conf = conf.replace(old, new)
    return conf


@dataclass
class Proxy:
    directory: Path
    http_port: int = field(default_factory=free_port)
    https_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def access_log(self) -> Path:
        return self.directory / "stdout.log"

    @property
    def error_log(self) -> Path:
        return self.directory / "stderr.log"

    def start(self, upstreams: tuple[int, int]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "acme" / ".well-known" / "acme-challenge").mkdir(parents=True, exist_ok=True)
        conf = self.directory / "nginx.conf"
        conf.write_text(
            render(
                NGINX_CONF.read_text(),
                directory=self.directory,
                http=self.http_port,
                https=self.https_port,
                upstreams=upstreams,
            )
        )
        command = [proxy.NGINX, "-p", str(self.directory), "-c", str(conf), "-e", str(self.directory / "early.log")]
        checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stderr
        self.process = subprocess.Popen(
            [*command, "-g", "daemon off;"],
            stdout=self.access_log.open("ab"),
            stderr=self.error_log.open("ab"),
        )
        deadline = time.monotonic() + 10
        while not _listening(self.https_port):
            assert self.process.poll() is None, self.error_log.read_text()
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


# --- the nodes ------------------------------------------------------------------------------------------------


def _env(redis_url: str, public_url: str) -> dict[str, str]:
    """What deploy/compose.yaml gives every node (the proxy's address is loopback here)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELECONSULT_")}
    return env | {
        "TELECONSULT_REDIS_URL": redis_url,
        "TELECONSULT_SECRET_KEY": SECRET,
        "TELECONSULT_PUBLIC_URL": public_url,
        "TELECONSULT_TRUSTED_PROXIES": "127.0.0.1",
        "TELECONSULT_MAX_PENDING_PER_IP": str(PENDING_PER_IP),
    }


def teleconsult(*args: str, data_dir: Path, database_url: str) -> list[str]:
    return [sys.executable, "-m", "teleconsult", "--data-dir", str(data_dir), "--database-url", database_url, *args]


@dataclass
class Node:
    """``teleconsult serve --behind-proxy`` as a process (its output in a log file, shown when a test fails)."""

    name: str
    data_dir: Path
    database_url: str
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.data_dir.parent / f"{self.name}.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        started = self.log.stat().st_size if self.log.exists() else 0
        command = teleconsult(
            "serve", "--port", str(self.port), "--behind-proxy", data_dir=self.data_dir, database_url=self.database_url
        )
        self.process = subprocess.Popen(command, stdout=self.log.open("ab"), stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + 30
        while b"running" not in self.log.read_bytes()[started:]:
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "the node did not start"
            time.sleep(0.05)

    def terminate(self) -> None:
        """SIGTERM: the node stops accepting, tells its clients to reconnect, and exits."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def wait(self, within_s: float = 15.0) -> int:
        assert self.process is not None
        return self.process.wait(within_s)

    def stop(self) -> None:
        if self.running:
            assert self.process is not None
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@dataclass
class Deployment:
    proxy: Proxy
    nodes: list[Node]
    database_url: str
    cert: Path

    @property
    def url(self) -> str:
        return self.proxy.url

    def ensure_running(self) -> None:
        for node in self.nodes:
            if not node.running:
                node.start()

    def client(self, address: str = "127.0.0.1") -> ClientSession:
        """A browser-like HTTP client of the public address, connecting from ``address`` (any of 127/8)."""
        context = ssl.create_default_context(cafile=str(self.cert))
        connector = TCPConnector(ssl=context, local_addr=(address, 0))
        return ClientSession(connector=connector, cookie_jar=CookieJar(unsafe=True))


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[Deployment]:
    if not proxy.available():
        unavailable(f"nginx is not installed at {proxy.NGINX} (Debian's nginx-light)")
    from tests.redis_server import redis_url

    base = tmp_path_factory.mktemp("deploy")
    in_thread(truncate_all(postgres_url))
    redis, redis_server = redis_url(base / "redis")
    front = Proxy(base / "nginx")
    env = _env(redis, front.url)
    data_dir = base / "data"  # one data directory for every node: the shared volume of a deployment
    # What compose's one-shot "migrate" service does, then the first doctor (docs/deploy.md).
    for args in (
        ("db", "upgrade"),
        ("keys", "list"),
        ("create-doctor", "--email", DOCTOR_EMAIL, "--name", "Dr Alice Martin", "--rpps", DOCTOR_RPPS),
    ):
        extra = ("--password", DOCTOR_PASSWORD) if args[0] == "create-doctor" else ()
        done = subprocess.run(
            teleconsult(*args, *extra, data_dir=data_dir, database_url=postgres_url),
            capture_output=True,
            env=env,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")
    nodes = [Node(f"node{i}", data_dir, postgres_url, env) for i in (1, 2)]
    try:
        for node in nodes:
            node.start()
        front.start((nodes[0].port, nodes[1].port))
        yield Deployment(front, nodes, postgres_url, front.directory / "tls" / "server.pem")
    finally:
        front.stop()
        for node in nodes:
            node.stop()
        if redis_server is not None:
            redis_server.stop()
        for log in (*(n.log for n in nodes), front.error_log):
            if log.exists():
                print(f"--- {log.name} ---\n{log.read_text(errors='replace')[-4000:]}")


@pytest.fixture
def deployed(deployment: Deployment) -> Deployment:
    """The deployment with both nodes up (a test before may have stopped one and failed)."""
    deployment.ensure_running()
    return deployment


@pytest.fixture
async def browsers(deployed: Deployment) -> AsyncIterator[Any]:
    made: list[ClientSession] = []

    def make(address: str = "127.0.0.1") -> ClientSession:
        session = deployed.client(address)
        made.append(session)
        return session

    yield make
    for session in made:
        await session.close()


# --- a client speaking to the public address ------------------------------------------------------------------


@dataclass
class Doctor:
    http: ClientSession
    csrf: str
    url: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf}

    async def consultation(self) -> dict[str, Any]:
        body = {"patient_name": "Jeanne Dupont", "patient_email": "jeanne@example.org"}
        response = await self.http.post(f"{self.url}/api/consultations", json=body, headers=self.headers)
        assert response.status == 201, await response.text()
        return dict(await response.json())

    async def ticket(self, consultation_id: str) -> str:
        response = await self.http.post(f"{self.url}/api/consultations/{consultation_id}/ticket", headers=self.headers)
        assert response.status == 200, await response.text()
        return str((await response.json())["ticket"])


async def log_in(http: ClientSession, url: str) -> Doctor:
    response = await http.post(f"{url}/api/login", json={"email": DOCTOR_EMAIL, "password": DOCTOR_PASSWORD})
    assert response.status == 200, await response.text()
    return Doctor(http, str((await response.json())["csrf_token"]), url)


async def join(http: ClientSession, url: str, link: str) -> dict[str, Any]:
    response = await http.post(f"{url}/api/join", json={"token": token_of(link), "consent": True})
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def connect(http: ClientSession, url: str, **hello: str) -> Peer:
    """A socket through the proxy, and its welcome; retried as a client does while the proxy finds a live node."""
    ws_url = url.replace("https://", "wss://") + "/ws"
    deadline = time.monotonic() + 20
    while True:
        try:
            ws = await http.ws_connect(ws_url)
        except aiohttp.WSServerHandshakeError as exc:  # 502 while both nodes looked down to nginx for a moment
            assert time.monotonic() < deadline, f"no node took the socket: {exc}"
            await asyncio.sleep(0.5)
            continue
        await ws.send_str(json.dumps({"type": "hello", "v": 1} | hello))
        welcome = json.loads((await ws.receive(timeout=15)).data)
        assert welcome["type"] == "welcome", welcome
        return Peer(ws, welcome)


@dataclass
class Call:
    doctor: Doctor
    consultation: dict[str, Any]
    doctor_ws: Peer
    patient_http: ClientSession
    patient_ws: Peer


async def admitted_call(browsers: Any, url: str) -> Call:
    doctor = await log_in(browsers(), url)
    consultation = await doctor.consultation()
    doctor_ws = await connect(doctor.http, url, ticket=await doctor.ticket(consultation["id"]))
    patient_http = browsers("127.0.0.3")
    joined = await join(patient_http, url, consultation["patient_link"])
    patient_ws = await connect(patient_http, url, ticket=joined["ticket"])
    await patient_ws.expect("waiting", timeout=10)
    lobby = await doctor_ws.expect("lobby", timeout=10, waiting=bool)
    assert lobby["waiting"][0]["peer_id"] == patient_ws.peer_id
    await doctor_ws.send(type="admit", peer_id=patient_ws.peer_id)
    await patient_ws.expect("admitted", timeout=10)
    await doctor_ws.expect("peer-joined", timeout=10)
    return Call(doctor, consultation, doctor_ws, patient_http, patient_ws)


async def relays(a: Peer, b: Peer, text: str) -> None:
    await a.send(type="chat", text=text)
    for peer in (a, b):
        chat = await peer.expect("chat", timeout=10)
        assert chat["text"] == text and chat["from"] == a.peer_id
    await b.send(type="offer", to=a.peer_id, sdp=f"v=0 {text}")
    assert (await a.expect("offer", timeout=10)) == {"type": "offer", "from": b.peer_id, "sdp": f"v=0 {text}"}
    await a.send(type="answer", to=b.peer_id, sdp="v=0 answer")
    assert (await b.expect("answer", timeout=10))["sdp"] == "v=0 answer"


# --- the tests ------------------------------------------------------------------------------------------------


async def test_a_20_mib_document_goes_up_and_down_through_the_proxy_byte_for_byte(
    deployed: Deployment, browsers: Any
) -> None:
    url = deployed.url
    doctor = await log_in(browsers(), url)
    consultation = await doctor.consultation()
    content = b"\x89PNG\r\n\x1a\n" + os.urandom(20 * MIB - 8)
    form = aiohttp.FormData()
    form.add_field("file", content, filename="imagerie.png", content_type="image/png")
    uploaded = await doctor.http.post(
        f"{url}/api/consultations/{consultation['id']}/documents", data=form, headers=doctor.headers
    )
    assert uploaded.status == 201, await uploaded.text()
    document = await uploaded.json()
    assert document["size"] == len(content)

    # Downloaded twice, so that both nodes serve it (round robin): each reads the shared data directory.
    for _ in deployed.nodes:
        download = await doctor.http.get(f"{url}/api/documents/{document['id']}")
        assert download.status == 200
        digest, size = hashlib.sha256(), 0
        async for chunk in download.content.iter_chunked(MIB):
            digest.update(chunk)
            size += len(chunk)
        assert size == len(content) and digest.hexdigest() == hashlib.sha256(content).hexdigest()

    # Streamed, not buffered: nginx says so (at warn) whenever a body spills to a temporary file.
    errors = deployed.proxy.error_log.read_text(errors="replace")
    assert "buffered to a temporary file" not in errors, errors
    for kind in ("client_body", "proxy"):
        assert not any((deployed.proxy.directory / kind).rglob("*")), f"nginx kept a {kind} file"

    # Larger than max_document_bytes plus the envelope: refused by the proxy before any of it is sent.
    limit = DocumentsSettings().max_document_bytes + ENVELOPE_BYTES
    too_big = await doctor.http.post(
        f"{url}/api/consultations/{consultation['id']}/documents",
        data=b"x" * (limit + 1),
        headers=doctor.headers | {"Content-Type": "multipart/form-data; boundary=x"},
        expect100=True,
    )
    assert too_big.status == 413

    # Plain HTTP is redirected, and the metrics are not served on the public address.
    async with ClientSession() as plain:
        moved = await plain.get(f"http://127.0.0.1:{deployed.proxy.http_port}/login", allow_redirects=False)
        assert moved.status == 301 and moved.headers["Location"] == "https://127.0.0.1/login"
    assert (await doctor.http.get(f"{url}/metrics")).status == 404


async def test_every_node_sees_the_clients_own_address(deployed: Deployment, browsers: Any) -> None:
    """X-Forwarded-For reaches the nodes on / and on /ws, and they believe it from the proxy only."""
    url = deployed.url
    doctor = await log_in(browsers(), url)
    consultation = await doctor.consultation()
    joined = await join(browsers("127.0.0.7"), url, consultation["patient_link"])
    assert joined["ticket"]
    engine = create_async_engine(deployed.database_url)
    try:
        async with engine.connect() as conn:
            query = select(AuditEvent.ip).where(AuditEvent.consultation_id == consultation["id"])
            addresses = set((await conn.execute(query)).scalars())
    finally:
        await engine.dispose()
    assert "127.0.0.7" in addresses, addresses  # the consent recorded with the patient's address, not nginx's

    # Sockets before hello are counted per client address: from distinct addresses, twice as many as one address
    # may hold on each node are all taken; from one address, more than the two nodes allow are not.
    async def pending(address: str) -> int:
        http = browsers(address)
        try:
            ws = await http.ws_connect(url.replace("https://", "wss://") + "/ws")
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
        opened.append(ws)
        return 101

    opened: list[aiohttp.ClientWebSocketResponse] = []
    distinct = [await pending(f"127.0.0.{20 + i}") for i in range(2 * PENDING_PER_IP + 2)]
    assert distinct == [101] * len(distinct)
    same = [await pending("127.0.0.40") for _ in range(2 * PENDING_PER_IP + 1)]
    assert same.count(429) >= 1 and same.count(101) <= 2 * PENDING_PER_IP, same
    for ws in opened:
        await ws.close()


async def test_a_call_through_the_proxy_relays_every_frame(deployed: Deployment, browsers: Any) -> None:
    call = await admitted_call(browsers, deployed.url)
    assert call.patient_ws.welcome["state"] == "waiting"
    await relays(call.patient_ws, call.doctor_ws, "bonjour")
    await relays(call.doctor_ws, call.patient_ws, "et vous ?")


async def test_sockets_survive_each_node_restarting_behind_the_proxy(deployed: Deployment, browsers: Any) -> None:
    """Each node in turn is stopped (SIGTERM: `reconnect` to its clients) and started again. Whichever node a
    client was on, it comes back through the proxy with its resume token: the same peer, still admitted."""
    url = deployed.url
    call = await admitted_call(browsers, url)
    peers = {"doctor": call.doctor_ws, "patient": call.patient_ws}
    https = {"doctor": call.doctor.http, "patient": call.patient_http}
    ids = {who: peer.peer_id for who, peer in peers.items()}
    moved = dict.fromkeys(peers, 0)
    for round_, node in enumerate(deployed.nodes):
        node.terminate()
        assert node.wait() == 0, node.log.read_text()
        for who, peer in list(peers.items()):
            if not await told_to_reconnect(peer):
                continue  # on the other node: it never noticed
            moved[who] += 1
            resumed = await connect(https[who], url, resume=peer.welcome["resume"])
            assert resumed.peer_id == ids[who] and resumed.welcome["state"] == "admitted", resumed.welcome
            peers[who] = resumed
        await relays(peers["patient"], peers["doctor"], f"après le redémarrage {round_ + 1}")
        node.start()
    assert all(moved.values()), moved  # every client was on a stopped node once, and came back each time
    await peers["doctor"].send(type="end")
    for peer in peers.values():
        await peer.expect("ended", timeout=10)


async def told_to_reconnect(peer: Peer) -> bool:
    """Whether the (stopped) node this socket was on said `reconnect` and closed it; False for a socket still open
    on the other node. Read once the node has exited, so everything it sent is here already."""
    told = False
    while True:
        try:
            msg = await peer.ws.receive(timeout=1.0)
        except TimeoutError:
            assert not told, "told to reconnect, but the socket stayed open"
            return False
        if msg.type == WSMsgType.TEXT:  # a lobby update sent before, or the reconnect
            told = told or json.loads(msg.data)["type"] == "reconnect"
            continue
        assert told, f"closed without reconnect: {msg}"
        return True


@pytest.mark.browser
async def test_a_browser_call_through_the_proxy(deployed: Deployment, chromium_path: str, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright, expect

    from tests.test_browser import (
        CHROMIUM_ARGS,
        DESKTOP,
        PHONE,
        REMOTE_VIDEO_PLAYING,
        WAIT_MS,
        PageErrors,
        browser_env,
        log_in,
        new_context,
    )

    watcher = PageErrors()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS, env=browser_env(tmp_path)
        )
        try:
            doctor_context = await new_context(browser, deployed.url, DESKTOP, ignore_https_errors=True)
            patient_context = await new_context(
                browser, deployed.url, PHONE, is_mobile=True, has_touch=True, ignore_https_errors=True
            )
            doctor = watcher.watch(await doctor_context.new_page(), "doctor")
            patient = watcher.watch(await patient_context.new_page(), "patient")

            await log_in(doctor, DOCTOR_EMAIL, DOCTOR_PASSWORD)
            await doctor.get_by_test_id("new-patient-name").fill("Jeanne Dupont")
            await doctor.get_by_test_id("new-patient-email").fill("jeanne.dupont@example.org")
            await doctor.get_by_test_id("new-submit").click()
            link_box = doctor.get_by_test_id("patient-link")
            await expect(link_box).to_have_value(re.compile(r"^https://127\.0\.0\.1:\d+/j/.+"), timeout=WAIT_MS)
            patient_link = await link_box.input_value()
            assert patient_link.startswith(deployed.url + "/j/")

            await patient.goto(patient_link)
            await patient.get_by_test_id("consent").check()
            await patient.get_by_test_id("join").click()
            await expect(patient.get_by_test_id("waiting")).to_be_visible(timeout=WAIT_MS)

            await doctor.get_by_test_id("start-call").click()
            await doctor.wait_for_url("**/c/*", timeout=WAIT_MS)
            admit = doctor.get_by_test_id("admit")
            await expect(admit).to_be_visible(timeout=WAIT_MS)
            await admit.click()
            for page in (doctor, patient):
                await page.wait_for_function(REMOTE_VIDEO_PLAYING, timeout=WAIT_MS)
                await expect(page.get_by_test_id("call-status")).to_have_attribute("data-state", "connected")
            await expect(patient.get_by_test_id("waiting")).to_be_hidden()

            await patient.get_by_test_id("chat-input").fill("Bonjour docteur")
            await patient.get_by_test_id("chat-send").click()
            await expect(doctor.get_by_test_id("chat-log")).to_contain_text("Bonjour docteur", timeout=WAIT_MS)
            assert watcher.errors == []
        finally:
            await browser.close()

    # The access log has every request, and never a join link's token.
    logged = deployed.proxy.access_log.read_text(errors="replace")
    assert '"GET /j/-"' in logged and token_of(patient_link) not in logged
    assert re.search(r'"GET /ws" 101 .* 127\.0\.0\.1:\d+ 101', logged), logged[-2000:]


# --- what cannot run here: the compose file and the Dockerfile, checked as text -------------------------------


def _settings_named(text: str) -> set[str]:
    return {name.lower() for name in re.findall(r"\bTELECONSULT_([A-Z0-9_]+)", text)}


def test_the_compose_file_and_the_dockerfile_name_real_settings_only() -> None:
    real = set(setting_names()) | {"config"}
    for name in ("compose.yaml", "Dockerfile"):
        unknown = _settings_named((DEPLOY / name).read_text()) - real
        assert not unknown, f"deploy/{name} names settings that do not exist: {sorted(unknown)}"


def test_the_compose_file_runs_the_proxy_in_front_of_the_nodes_it_names() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "node1", "node2", "coturn", "nginx"} <= set(services)
    for name, service in services.items():
        for needed in service.get("depends_on", {}):
            assert needed in services, f"{name} depends on {needed}, which is not a service"
    upstream = set(re.findall(r"server (node\d+):8080", NGINX_CONF.read_text()))
    nodes = {name for name in services if name.startswith("node")}
    assert upstream == nodes
    for name in nodes:
        node = services[name]
        command = " ".join(node["command"])
        assert "serve" in command and "--behind-proxy" in command and "--host 0.0.0.0" in command
        env = node["environment"]
        for setting in ("DATABASE_URL", "REDIS_URL", "PUBLIC_URL", "SECRET_KEY", "TRUSTED_PROXIES", "TURN_URLS"):
            assert f"TELECONSULT_{setting}" in env, f"{name} lacks TELECONSULT_{setting}"
        assert node["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # The nodes believe X-Forwarded-For from the proxy's fixed address only.
    proxy_address = services["nginx"]["networks"]["front"]["ipv4_address"]
    assert services["node1"]["environment"]["TELECONSULT_TRUSTED_PROXIES"] == proxy_address
    assert services["migrate"]["command"][:1] == ["sh"] and "db upgrade" in services["migrate"]["command"][-1]


def test_the_nodes_of_the_compose_file_have_settings_the_server_accepts() -> None:
    """Each node's environment, with deploy/env.example's values (and made-up secrets) put in, is taken by the
    settings loader, and `serve` would start with it."""
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    values = dict(
        line.split("=", 1) for line in (DEPLOY / "env.example").read_text().splitlines() if re.match(r"[A-Z_]+=", line)
    )
    values |= {name: "0123456789abcdef" for name, value in values.items() if not value and "SECRET" in name}
    values["POSTGRES_PASSWORD"] = "0123456789abcdef"

    def interpolate(text: str) -> str:
        def one(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(3)
            if values.get(name):
                return values[name]
            assert match.group(2) != ":?", f"{name} must be set in .env and env.example has no value for it"
            return default or ""

        return re.sub(r"\$\{([A-Z_]+)(?:(:[-?])([^}]*))?\}", one, text)

    for name in ("node1", "node2"):
        service = compose["services"][name]
        environ = {key: interpolate(str(value)) for key, value in service["environment"].items()}
        args = service["command"]
        overrides = {"host": args[args.index("--host") + 1], "port": int(args[args.index("--port") + 1])}
        settings = load_settings(overrides | {"behind_proxy": True}, environ=environ)
        settings.server.check_serving()
        assert settings.server.public_url == "https://" + values["PUBLIC_HOSTNAME"]
        assert settings.bus.redis_url and settings.database_url.startswith("postgresql+asyncpg://")
        assert settings.signaling.turn_urls[-1].startswith("turns:")


def test_the_dockerfile_is_what_the_compose_file_expects() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    instructions = [line.split(None, 1) for line in _logical_lines(dockerfile)]
    kinds = [kind for kind, *_ in instructions]
    assert instructions[0][1].startswith("python:3.11-slim-bookworm")
    assert kinds.count("USER") >= 1 and [rest for kind, rest in instructions if kind == "USER"][-1] != "root"
    assert ["EXPOSE", "8080"] in instructions
    healthcheck = next(rest for kind, rest in instructions if kind == "HEALTHCHECK")
    assert "/healthz" in healthcheck
    assert any(kind == "VOLUME" and "/data" in rest for kind, rest in instructions)
    assert any(kind == "RUN" and "pip install" in rest and " ." in rest for kind, rest in instructions)


def _logical_lines(dockerfile: str) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments left out."""
    lines: list[str] = []
    current = ""
    for raw in dockerfile.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        lines.append(current + line)
        current = ""
    return lines


def test_the_proxy_waits_longer_than_the_heartbeat_and_takes_the_largest_document() -> None:
    conf = NGINX_CONF.read_text()
    ws = conf.split("location = /ws {", 1)[1].split("}", 1)[0]
    read = re.findall(r"proxy_read_timeout (\d+)s;", ws)
    assert read and int(read[0]) > 1.5 * SignalingSettings().heartbeat_s
    body = re.findall(r"client_max_body_size (\d+)k;", conf)
    assert body and int(body[0]) * 1024 == DocumentsSettings().max_document_bytes + ENVELOPE_BYTES
