"""``GET /metrics`` scraped from a running server and parsed with prometheus-client's own parser: the counters move
by exactly what was done, the gauges say what the node holds, and no label carries an id or a patient's data."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from teleconsult.metrics import Metrics, Sources
from tests.conftest import Running
from tests.helpers import Client, connect, doctor_in_room, drop, join, token_of

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

PATIENT_NAME = "Zéphyrine Quillembois-Marchetti"
PATIENT_EMAIL = "zephyrine.quillembois@example.org"


async def scrape(client: Client) -> tuple[str, Samples]:
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    text = await response.text()
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def call_with(clients: Any) -> tuple[Client, str, dict[str, Any], Any, Client, Any]:
    """A call of a doctor and an admitted patient with a distinctive name and address."""
    doctor_http, csrf, consultation, doctor = await doctor_in_room(
        clients, patient_name=PATIENT_NAME, patient_email=PATIENT_EMAIL
    )
    patient_http = await clients()
    patient = await connect(patient_http, (await join(patient_http, consultation["patient_link"]))["ticket"])
    await patient.expect("waiting")
    lobby = await doctor.expect("lobby", waiting=bool)
    await doctor.send(type="admit", peer_id=lobby["waiting"][0]["peer_id"])
    await patient.expect("admitted")
    await doctor.expect("peer-joined")
    return doctor_http, csrf, consultation, doctor, patient_http, patient


async def test_relayed_and_refused_frames_are_counted_exactly(clients: Any, running: Running) -> None:
    scraper = await clients()
    _doctor_http, _csrf, _consultation, doctor, _patient_http, patient = await call_with(clients)
    _, before = await scrape(scraper)

    for n in range(3):
        await doctor.send(type="chat", text=f"bonjour {n}")
    await doctor.send(type="offer", to=patient.peer_id, sdp="v=0 offer")
    await patient.send(type="answer", to=doctor.peer_id, sdp="v=0 answer")
    for _ in range(3):
        await patient.expect("chat")
    await patient.expect("offer")
    await doctor.expect("answer")
    # Refused: a patient may not admit (forbidden), a frame that is no JSON (bad_message), an unknown type.
    await patient.send(type="admit", peer_id=doctor.peer_id, id="a1")
    assert (await patient.expect("error"))["code"] == "forbidden"
    await patient.ws.send_str("{not json")
    assert (await patient.expect("error"))["code"] == "bad_message"
    await patient.send(type="teleport", id="t1")
    assert (await patient.expect("error"))["code"] == "unknown_type"

    _, after = await scrape(scraper)
    relayed = "teleconsult_frames_relayed_total"
    assert delta(before, after, relayed, type="chat") == 3
    assert delta(before, after, relayed, type="offer") == 1
    assert delta(before, after, relayed, type="answer") == 1
    assert delta(before, after, relayed, type="candidate") == 0
    refused = "teleconsult_frames_refused_total"
    assert delta(before, after, refused, code="forbidden") == 1
    assert delta(before, after, refused, code="bad_message") == 1
    assert delta(before, after, refused, code="unknown_type") == 1
    assert (
        sum(v for (name, _), v in after.items() if name == refused)
        - sum(v for (name, _), v in before.items() if name == refused)
        == 3
    )
    # A refused frame is not a relayed one.
    await patient.send(type="offer", to="p_nobody", sdp="v=0")
    assert (await patient.expect("error"))["code"] in {"forbidden", "not_found"}
    _, later = await scrape(scraper)
    assert delta(after, later, relayed, type="offer") == 0


async def test_the_gauges_say_what_the_node_holds(clients: Any, running: Running) -> None:
    scraper = await clients()
    _, empty = await scrape(scraper)
    assert value(empty, "teleconsult_sockets") == 0 and value(empty, "teleconsult_rooms") == 0
    assert value(empty, "teleconsult_sessions") == 0 and value(empty, "teleconsult_admitted_peers") == 0
    await call_with(clients)
    _, held = await scrape(scraper)
    assert value(held, "teleconsult_sockets") == 2
    assert value(held, "teleconsult_sessions") == 2
    assert value(held, "teleconsult_rooms") == 1
    assert value(held, "teleconsult_admitted_peers") == 2
    for loop in ("housekeeping", "outbox", "heartbeat", "no-shows", "audit-anchor"):
        assert value(held, "teleconsult_loop_up", loop=loop) == 1
    # SQLite: one connection, nothing checked out between two requests.
    assert value(held, "teleconsult_db_pool_size") == 1 and value(held, "teleconsult_db_pool_limit") == 1
    assert value(held, "teleconsult_db_pool_checked_out") == 0
    assert ("teleconsult_bus_round_trip_seconds", frozenset()) in held
    assert 0 <= value(held, "teleconsult_bus_round_trip_seconds") < 1
    assert ("teleconsult_mail_queue", frozenset()) in held


async def test_the_mail_queue_depth_counts_the_mails_waiting(clients: Any, running: Running) -> None:
    (outbox,) = [task for task in asyncio.all_tasks() if task.get_name() == "chore:outbox"]
    outbox.cancel()  # nothing is sent from now on
    await asyncio.gather(outbox, return_exceptions=True)
    scraper = await clients()
    _, before = await scrape(scraper)
    await doctor_in_room(clients, patient_name=PATIENT_NAME, patient_email=PATIENT_EMAIL)  # one invitation mail
    _, after = await scrape(scraper)
    assert delta(before, after, "teleconsult_mail_queue") == 1
    assert value(after, "teleconsult_loop_up", loop="outbox") == 0


async def test_a_resume_is_counted(clients: Any, running: Running) -> None:
    scraper = await clients()
    _doctor_http, _csrf, _consultation, doctor, patient_http, patient = await call_with(clients)
    _, before = await scrape(scraper)
    token = patient.welcome["resume"]
    await drop(patient)
    back = await connect(patient_http, resume=token)
    assert back.peer_id == patient.peer_id
    await back.send(type="ping", id="after")
    await back.expect("pong")
    _, after = await scrape(scraper)
    assert delta(before, after, "teleconsult_resumes_total") == 1
    # A token spent already is refused: counted under its code, not as a resume.
    ws = await patient_http.ws_connect("/ws")
    await ws.send_json({"type": "hello", "v": 1, "resume": token})
    assert (await ws.receive_json(timeout=5))["code"] == "unauthorized"
    await ws.close()
    _, later = await scrape(scraper)
    assert delta(after, later, "teleconsult_resumes_total") == 0
    assert delta(after, later, "teleconsult_frames_refused_total", code="unauthorized") == 1
    await doctor.ws.close()


async def test_document_bytes_in_and_out_and_latency_by_route_pattern(clients: Any, running: Running) -> None:
    scraper = await clients()
    doctor_http, csrf, consultation, _doctor, _patient_http, _patient = await call_with(clients)
    _, before = await scrape(scraper)
    content = b"Compte rendu: tension 12/8, pouls 64.\n" * 200
    form = aiohttp.FormData()
    form.add_field("file", content, filename="compte-rendu.txt", content_type="text/plain")
    uploaded = await doctor_http.post(
        f"/api/consultations/{consultation['id']}/documents", data=form, headers={"X-CSRF-Token": csrf}
    )
    assert uploaded.status == 201, await uploaded.text()
    document = await uploaded.json()
    got = await doctor_http.get(f"/api/documents/{document['id']}")
    assert got.status == 200 and await got.read() == content
    assert (await doctor_http.get("/no/such/page/zq-probe")).status == 404
    text, after = await scrape(scraper)

    assert delta(before, after, "teleconsult_document_bytes_total", direction="in") == len(content)
    assert delta(before, after, "teleconsult_document_bytes_total", direction="out") == len(content)
    count = "teleconsult_request_duration_seconds_count"
    assert delta(before, after, count, method="POST", route="/api/consultations/{id}/documents") == 1
    assert delta(before, after, count, method="GET", route="/api/documents/{id}") == 1
    assert delta(before, after, count, method="other", route="other") == 1
    assert value(after, count, method="POST", route="/api/consultations") >= 1
    assert value(after, count, method="GET", route="/metrics") >= 1
    assert (
        value(
            after, "teleconsult_request_duration_seconds_bucket", method="GET", route="/api/documents/{id}", le="+Inf"
        )
        >= 1
    )
    # The WebSocket endpoint is not timed (a socket lasts the whole call).
    assert not any(dict(labels).get("route") == "/ws" for _, labels in after)
    # Never an id in a label, anywhere.
    for secret in (consultation["id"], document["id"], "zq-probe"):
        assert secret not in text


async def test_no_label_and_no_line_carries_the_patients_name_or_address(clients: Any, running: Running) -> None:
    scraper = await clients()
    doctor_http, _csrf, consultation, doctor, patient_http, patient = await call_with(clients)
    await doctor.send(type="chat", text=f"Bonjour {PATIENT_NAME}")
    await patient.expect("chat")
    await patient.send(type="admit", peer_id=PATIENT_EMAIL)  # refused, with the address in the frame
    await patient.expect("error")
    await doctor_http.get(f"/api/consultations/{consultation['id']}")
    await doctor_http.get(f"/api/search/{PATIENT_EMAIL}")  # no such route: "other"
    assert (await patient_http.get(f"/j/{token_of(consultation['patient_link'])}")).status == 200
    text, samples = await scrape(scraper)
    everything = [PATIENT_NAME, "Quillembois", "Zéphyrine", PATIENT_EMAIL, "zephyrine", consultation["id"]]
    everything += [doctor.peer_id, patient.peer_id, token_of(consultation["patient_link"])]
    assert value(samples, "teleconsult_request_duration_seconds_count", method="GET", route="/j/{token}") == 1
    for secret in everything:
        assert secret.lower() not in text.lower(), secret
    # Label values are only what the code knows in advance.
    known = re.compile(r"^([a-z_-]+|GET|HEAD|POST|PUT|PATCH|DELETE|/[\w/{}.-]*|[\d.e+]+|\+Inf)$")
    for _, labels in samples:
        for label, label_value in labels:
            assert known.match(label_value), (label, label_value)
            if label == "route":
                assert label_value == "other" or label_value.startswith("/"), label_value
                assert not re.search(r"/(c|ml|doc|p)_[0-9a-zA-Z]", label_value), label_value


async def test_metrics_answer_only_the_configured_addresses(server_with: Any) -> None:
    _live, client = await server_with(metrics_from=("192.0.2.0/24",))  # loopback is not in it
    http = await client()
    assert (await http.get("/metrics")).status == 404
    assert (await http.get("/healthz")).status == 200
    live, client = await server_with()
    async with aiohttp.ClientSession() as direct, direct.get(f"{live.url}/metrics") as response:
        assert response.status == 200 and "teleconsult_sessions 0" in await response.text()


async def test_each_app_counts_in_its_own_registry(server_with: Any) -> None:
    _first, first_client = await server_with()
    _second, second_client = await server_with()
    scrapes = "teleconsult_request_duration_seconds_count"
    for _ in range(3):
        _, one = await scrape(await first_client())
    _, two = await scrape(await second_client())
    assert value(one, scrapes, method="GET", route="/metrics") == 2  # a scrape is timed once it has answered
    assert value(two, scrapes, method="GET", route="/metrics") == 0


async def test_a_probe_that_does_not_answer_never_holds_the_scrape() -> None:
    """A database or a bus that hangs: the scrape answers within its bound without that sample, and the value
    comes once the service answers (the probe is never cancelled in the middle of its work)."""
    metrics = Metrics()
    answer = asyncio.Event()
    calls = 0

    async def hanging() -> float:
        nonlocal calls
        calls += 1
        await answer.wait()
        return 7.0

    async def nothing() -> float | None:
        return None

    def disposed() -> Any:
        raise RuntimeError("engine disposed")

    metrics.watch(
        Sources(
            sockets=lambda: 3,
            sessions=lambda: 0,
            rooms=lambda: 0,
            admitted_peers=lambda: 0,
            loops=dict,
            pool=disposed,
            mail_queue=hanging,
            bus_round_trip=nothing,
        )
    )
    started = time.monotonic()
    text = (await metrics.scrape()).decode()
    assert time.monotonic() - started < 3
    assert "teleconsult_sockets 3.0" in text
    assert "\nteleconsult_mail_queue " not in text and "\nteleconsult_bus_round_trip_seconds " not in text
    assert "\nteleconsult_db_pool_size " not in text  # a reading that fails is left out, the scrape goes on
    await metrics.scrape()
    assert calls == 1  # one measurement at a time
    answer.set()
    await asyncio.sleep(0)
    assert "teleconsult_mail_queue 7.0" in (await metrics.scrape()).decode()
    await metrics.close()
