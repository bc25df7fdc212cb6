"""The protocol codec: golden frames round-trip, and no input can escape the error codes."""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from teleconsult.errors import ErrorCode, TeleconsultError
from teleconsult.protocol import decode_client, encode
from teleconsult.protocol import messages as m
from teleconsult.protocol.codec import ref_of

GOLDEN_CLIENT = [
    {"type": "hello", "v": 1, "ticket": "t" * 43},
    {"type": "hello", "v": 1, "resume": "r" * 43, "id": "h1"},
    {"type": "admit", "peer_id": "p_1"},
    {"type": "deny", "peer_id": "p_1"},
    {"type": "remove", "peer_id": "p_1"},
    {"type": "offer", "to": "p_2", "sdp": "v=0\r\n"},
    {"type": "answer", "to": "p_2", "sdp": "v=0\r\n"},
    {"type": "candidate", "to": "p_2", "candidate": {"candidate": "candidate:1", "sdpMid": "0", "sdpMLineIndex": 0}},
    {"type": "candidate", "to": "p_2", "candidate": None},
    {"type": "chat", "text": "Bonjour, docteur ! Ça va ?"},
    {"type": "leave"},
    {"type": "end"},
    {"type": "ping", "id": "x"},
]


@pytest.mark.parametrize("frame", GOLDEN_CLIENT, ids=lambda f: str(f["type"]))
def test_golden_client_frames_decode_and_reencode(frame: dict[str, object]) -> None:
    message = decode_client(json.dumps(frame))
    built = msgspec.to_builtins(message)
    for key, value in frame.items():
        assert built[key] == value, key
    assert decode_client(msgspec.json.encode(message)) == message


def test_server_frames_use_wire_names() -> None:
    assert json.loads(encode(m.OfferOut(from_="p_1", sdp="s"))) == {"type": "offer", "from": "p_1", "sdp": "s"}
    assert json.loads(encode(m.CandidateOut(from_="p_1", candidate=None))) == {
        "type": "candidate",
        "from": "p_1",
        "candidate": None,
    }
    assert json.loads(encode(m.Error(code="forbidden", message="no", ref="r"))) == {
        "type": "error",
        "code": "forbidden",
        "message": "no",
        "ref": "r",
    }
    assert "ref" not in json.loads(encode(m.Pong()))


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", ErrorCode.BAD_MESSAGE),
        ("[1, 2]", ErrorCode.BAD_MESSAGE),
        ('"hello"', ErrorCode.BAD_MESSAGE),
        ("{}", ErrorCode.BAD_MESSAGE),
        ('{"type": 3}', ErrorCode.BAD_MESSAGE),
        ('{"type": "dance"}', ErrorCode.UNKNOWN_TYPE),
        ('{"type": "chat"}', ErrorCode.BAD_MESSAGE),
        ('{"type": "chat", "text": ""}', ErrorCode.BAD_MESSAGE),
        ('{"type": "chat", "text": NaN}', ErrorCode.BAD_MESSAGE),
        ('{"type": "hello", "v": Infinity}', ErrorCode.BAD_MESSAGE),
        ('{"type": "hello", "v": true}', ErrorCode.BAD_MESSAGE),
        ('{"type": "chat", "text": "\\ud800"}', ErrorCode.BAD_MESSAGE),
        ('{"type": "admit", "peer_id": "' + "x" * 65 + '"}', ErrorCode.BAD_MESSAGE),
        ('{"a":' + "[" * 5000 + "]" * 5000 + "}", ErrorCode.BAD_MESSAGE),
        ('{"type": "chat", "text": "' + "x" * 70_000 + '"}', ErrorCode.TOO_LARGE),
    ],
)
def test_malformed_frames_get_their_code(raw: str, code: ErrorCode) -> None:
    with pytest.raises(TeleconsultError) as info:
        decode_client(raw)
    assert info.value.code is code


def test_unknown_fields_are_ignored() -> None:
    assert decode_client('{"type": "ping", "extra": {"deep": [1]}}') == m.Ping()


def test_ref_of_finds_the_id_of_a_broken_frame() -> None:
    assert ref_of('{"type": "chat", "id": "abc"}') == "abc"
    assert ref_of('{"id": 5}') is None
    assert ref_of("nope") is None


ALLOWED = {ErrorCode.BAD_MESSAGE, ErrorCode.UNKNOWN_TYPE, ErrorCode.TOO_LARGE}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_decode_or_fail_cleanly(data: bytes) -> None:
    try:
        decode_client(data)
    except TeleconsultError as error:
        assert error.code in ALLOWED


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["type", "v", "to", "sdp", "text", "peer_id", "id"]), json_values))
def test_arbitrary_objects_decode_or_fail_cleanly(obj: dict[str, object]) -> None:
    try:
        message = decode_client(json.dumps(obj))
    except TeleconsultError as error:
        assert error.code in ALLOWED
    else:
        assert message.__struct_config__.tag == obj["type"]
