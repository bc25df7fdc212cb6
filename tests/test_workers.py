"""``--workers``: which worker a connection goes to, from its request line (``teleconsult/workers.py``). The
processes themselves, one port for two workers, are in ``tests/test_cluster.py``."""

from __future__ import annotations

from teleconsult.workers import room_affinity


def head(target: str, method: str = "GET") -> bytes:
    return f"{method} {target} HTTP/1.1\r\nHost: teleconsult.example\r\nUpgrade: websocket\r\n\r\n".encode()


def test_a_socket_naming_its_room_goes_to_the_worker_its_key_picks_every_time() -> None:
    picks = {room_affinity(head(f"/ws?room={key:08x}"), 4) for key in range(200)}
    assert picks == {0, 1, 2, 3}  # keys spread over the workers
    for key in ("0a1b2c3d", "ffffffff", "c_abc"):
        first = room_affinity(head(f"/ws?room={key}"), 3)
        assert first is not None and 0 <= first < 3
        assert room_affinity(head(f"/ws?room={key}&v=1"), 3) == first  # the same room, the same worker
        assert room_affinity(head(f"/ws?room={key}"), 3) == first


def test_anything_else_goes_to_any_worker() -> None:
    for request in (
        head("/ws"),
        head("/ws?room="),
        head("/ws?other=1"),
        head("/api/consultations?room=0a1b2c3d"),
        head("/ws?room=0a1b2c3d", method="POST"),
        b"GET /ws?room=0a1b2c3d",  # the request line not in yet
        b"\x16\x03\x01\x02\x00\x01",  # a TLS handshake: nothing readable
        b"",
    ):
        assert room_affinity(request, 2) is None, request
