"""What this node counts, in Prometheus terms (the home of prometheus-client).

Each app has its own ``Metrics`` and its own ``CollectorRegistry`` (never the process-wide one: tests start many
apps in one process, and ``teleconsult serve --workers N`` runs one registry per process). The services count
through typed methods (``frame_relayed``, ``frame_refused``, ``resumed``, ``document_bytes``, ``request_latency``);
their labels are bound once here, so a relayed frame costs one dict look-up and one ``inc()``. What is a state
rather than an event (sockets, rooms, the database pool, the mail queue, the bus round trip) is read when
``/metrics`` is scraped, from the callbacks the composition root hands to ``watch``.

Labels name only what the code knows in advance: a frame type, an error code, a route's pattern (``{id}``, never
the id), a direction. Nothing a client sends (a name, an address, an id) ever becomes a label.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from teleconsult.errors import ErrorCode

log = logging.getLogger(__name__)

#: The ``Content-Type`` of what ``Metrics.scrape`` returns.
CONTENT_TYPE = CONTENT_TYPE_LATEST

#: The client frames relayed to other peers (``chat`` to every admitted peer, once counted).
FrameType = Literal["offer", "answer", "candidate", "chat"]
FRAME_TYPES: tuple[FrameType, ...] = ("offer", "answer", "candidate", "chat")
Direction = Literal["in", "out"]
#: The route label of a request no route matched (an unknown path, a method the path does not take).
OTHER_ROUTE = "other"
#: Request latency buckets, in seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: How long a scrape waits for its probes (a database or a bus that does not answer): past it, the last value
#: measured is shown and the probe finishes in the background (it is never cancelled mid-transaction).
PROBE_WAIT_S = 1.0

Read = Callable[[], float | None]
ReadMany = Callable[[], Mapping[str, float]]
Measure = Callable[[], Awaitable[float | None]]


class PoolUse(Protocol):
    """The database pool now (``Database.pool_status()``)."""

    @property
    def checked_out(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def limit(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Sources:
    """Where the scrape-time gauges are read: each a cheap callback, or an awaitable for what asks another
    service (the database, the bus)."""

    sockets: Read
    sessions: Read
    rooms: Read
    admitted_peers: Read
    loops: ReadMany
    pool: Callable[[], PoolUse]
    mail_queue: Measure
    bus_round_trip: Measure


class Metrics:
    """This node's counters and scrape-time gauges, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        relayed = Counter(
            "teleconsult_frames_relayed",
            "Client frames relayed to other peers, by frame type.",
            ["type"],
            registry=self.registry,
        )
        self._relayed = {kind: relayed.labels(kind) for kind in FRAME_TYPES}
        refused = Counter(
            "teleconsult_frames_refused",
            "Error frames sent back to a client (a frame refused, a hello turned down, a flood), by error code.",
            ["code"],
            registry=self.registry,
        )
        self._refused = {code: refused.labels(code.value) for code in ErrorCode}
        self._resumes = Counter(
            "teleconsult_resumes", "Peers back in their room with a resume token.", registry=self.registry
        )
        document_bytes = Counter(
            "teleconsult_document_bytes",
            "Document bytes (plaintext) uploaded (in) and served (out).",
            ["direction"],
            registry=self.registry,
        )
        self._document_bytes: dict[Direction, Counter] = {d: document_bytes.labels(d) for d in ("in", "out")}
        self._latency = Histogram(
            "teleconsult_request_duration_seconds",
            "HTTP request latency, by method and route pattern (the WebSocket endpoint is not timed).",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._probes: list[_Probe] = []

    # --- events (the services call these) ------------------------------------------------------------------------

    def frame_relayed(self, kind: FrameType) -> None:
        self._relayed[kind].inc()

    def frame_refused(self, code: ErrorCode) -> None:
        self._refused[code].inc()

    def resumed(self) -> None:
        self._resumes.inc()

    def document_bytes(self, direction: Direction, n: int) -> None:
        self._document_bytes[direction].inc(n)

    def request_latency(self, route: str, seconds: float, *, method: str) -> None:
        """``route``: the route's pattern (``/api/consultations/{id}``) or ``OTHER_ROUTE``, never a path."""
        self._latency.labels(method, route).observe(seconds)

    # --- states (read when scraped) -----------------------------------------------------------------------------

    def watch(self, sources: Sources) -> None:
        """Register the gauges read at each scrape."""
        self.gauge("teleconsult_sockets", "Open WebSockets on this node.", sources.sockets)
        self.gauge(
            "teleconsult_sessions",
            "Peers seated in a room on this node (connected or within their grace).",
            sources.sessions,
        )
        self.gauge("teleconsult_rooms", "Consultation rooms live on this node.", sources.rooms)
        self.gauge(
            "teleconsult_admitted_peers",
            "Peers admitted into their room on this node (connected or within their grace).",
            sources.admitted_peers,
        )
        self.gauges(
            "teleconsult_loop_up", "Whether a background loop is running (1) or not (0).", "loop", sources.loops
        )
        pool = sources.pool
        self.gauge("teleconsult_db_pool_checked_out", "Database connections in use.", lambda: pool().checked_out)
        self.gauge("teleconsult_db_pool_size", "Database connections the pool keeps open.", lambda: pool().size)
        self.gauge(
            "teleconsult_db_pool_limit",
            "Database connections the pool may hold at most (its size and overflow).",
            lambda: pool().limit,
        )
        self.probe(
            "teleconsult_mail_queue",
            "Mails waiting to be sent, on every node (the outbox is shared).",
            sources.mail_queue,
        )
        self.probe(
            "teleconsult_bus_round_trip_seconds",
            "The health check's bus ping, timed (no sample while the bus does not answer).",
            sources.bus_round_trip,
        )

    def gauge(self, name: str, documentation: str, read: Read) -> None:
        """A gauge whose value ``read()`` gives at each scrape (``None``: unknown, no sample)."""
        self.registry.register(_Reading(name, documentation, None, lambda: _one(read())))

    def gauges(self, name: str, documentation: str, label: str, read: ReadMany) -> None:
        """A gauge with one sample per key of ``read()`` (keys the code knows, such as loop names), under ``label``."""
        self.registry.register(_Reading(name, documentation, label, read))

    def probe(self, name: str, documentation: str, measure: Measure) -> None:
        """A gauge measured by an awaitable at each scrape (a database count, a bus ping), at most one at a time."""
        probe = _Probe(measure)
        self._probes.append(probe)
        self.gauge(name, documentation, lambda: probe.value)

    async def scrape(self) -> bytes:
        """The Prometheus text exposition, probes measured first (waiting at most ``PROBE_WAIT_S``)."""
        running = [probe.start() for probe in self._probes]
        if running:
            await asyncio.wait(running, timeout=PROBE_WAIT_S)
        return generate_latest(self.registry)

    async def close(self) -> None:
        """Let probes still measuring finish (for at most ``PROBE_WAIT_S``), then cancel them."""
        late = [probe.task for probe in self._probes if probe.task is not None and not probe.task.done()]
        if late:
            _, pending = await asyncio.wait(late, timeout=PROBE_WAIT_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)


class _Probe:
    """The last value an awaitable measured, and the measurement under way (one at a time)."""

    def __init__(self, measure: Measure) -> None:
        self._measure = measure
        self.value: float | None = None
        self.task: asyncio.Task[None] | None = None

    def start(self) -> asyncio.Task[None]:
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run())
        return self.task

    async def _run(self) -> None:
        try:
            self.value = await self._measure()
        except Exception as exc:  # the service is down: no sample until it answers again
            log.debug("metrics probe failed: %s", type(exc).__name__)
            self.value = None


class _Reading:
    """A collector of one gauge family read at scrape time."""

    def __init__(self, name: str, documentation: str, label: str | None, read: ReadMany) -> None:
        self._name = name
        self._documentation = documentation
        self._labels = [label] if label is not None else None
        self._read = read

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(self._name, self._documentation, labels=self._labels)

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        try:
            values = self._read()
        except Exception:  # one reading failing never fails the whole scrape
            log.exception("metrics: could not read %s", self._name)
            values = {}
        for key, value in sorted(values.items()):
            if self._labels is None:
                family.add_metric([], value)
            else:
                family.add_metric([key], value)
        yield family


def _one(value: float | None) -> Mapping[str, float]:
    return {} if value is None or math.isnan(value) else {"": value}
