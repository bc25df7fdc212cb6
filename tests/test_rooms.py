"""Room rules as pure code: roles, admission, capacity, and the role x message x state permission matrix."""

from __future__ import annotations

import itertools

import pytest

from teleconsult.errors import ErrorCode, TeleconsultError
from teleconsult.ids import PeerId
from teleconsult.protocol.messages import CLIENT_TYPES
from teleconsult.rooms import ALL_ROLES, RULES, Capacity, PeerState, Role, Room


def seated(room: Room, role: Role, n: int = 1, *, admitted: bool = False) -> list[PeerId]:
    ids = []
    for i in range(n):
        peer_id = PeerId(f"p_{role}_{i}_{len(room)}")
        room.join(peer_id, role, f"{role} {i}", seat=f"seat-{role}-{i}-{len(room)}", pre_admitted=admitted)
        ids.append(peer_id)
    return ids


def test_every_client_message_type_has_a_permission_rule() -> None:
    assert set(RULES) == set(CLIENT_TYPES)


def test_doctor_is_admitted_on_arrival_others_wait() -> None:
    room = Room("c_1")
    (doctor,) = seated(room, Role.DOCTOR)
    (patient,) = seated(room, Role.PATIENT)
    assert room.get(doctor).state is PeerState.ADMITTED  # type: ignore[union-attr]
    assert room.get(patient).state is PeerState.WAITING  # type: ignore[union-attr]
    assert [p.peer_id for p in room.waiting()] == [patient]
    assert not room.is_in_progress()
    room.admit(room.get(doctor), patient)  # type: ignore[arg-type]
    assert room.is_in_progress()


@pytest.mark.parametrize("role", [Role.DOCTOR, Role.PATIENT, Role.NURSE])
def test_one_seat_per_role_by_default(role: Role) -> None:
    room = Room("c_1")
    seated(room, role)
    with pytest.raises(TeleconsultError) as info:
        seated(room, role)
    assert info.value.code is ErrorCode.ROOM_FULL


def test_guests_need_configured_seats() -> None:
    with pytest.raises(TeleconsultError) as info:
        seated(Room("c_1"), Role.GUEST)
    assert info.value.code is ErrorCode.ROOM_FULL
    room = Room("c_2", Capacity(guest=2))
    seated(room, Role.GUEST, 2)
    with pytest.raises(TeleconsultError):
        seated(room, Role.GUEST)


def test_a_second_device_on_a_held_seat_waits_and_takes_the_seat_only_when_admitted() -> None:
    room = Room("c_1")
    (doctor,) = seated(room, Role.DOCTOR)
    room.join(PeerId("p_old"), Role.PATIENT, "Jeanne", seat="u_1", pre_admitted=True)
    result = room.join(PeerId("p_new"), Role.PATIENT, "Jeanne", seat="u_1", pre_admitted=True)
    assert result.replaced is None and not result.peer.admitted  # not even a pre-admitted seat lets it in
    assert room.is_second_device(result.peer) and not room.is_second_device(room.get("p_old"))  # type: ignore[arg-type]
    third = room.join(PeerId("p_third"), Role.PATIENT, "Jeanne", seat="u_1", pre_admitted=False)
    assert third.replaced is result.peer  # one second device waits at a time
    admission = room.admit(room.get(doctor), "p_third")  # type: ignore[arg-type]
    assert admission.peer.admitted and admission.replaced is not None and admission.replaced.peer_id == "p_old"
    assert room.get("p_old") is None and len(room) == 2
    room.undo_admission(admission)
    assert room.get("p_old") is not None and room.is_second_device(third.peer)


def test_admitting_the_first_device_leaves_the_second_waiting() -> None:
    room = Room("c_1")
    (doctor,) = seated(room, Role.DOCTOR)
    room.join(PeerId("p_first"), Role.PATIENT, "Jeanne", seat="u_1", pre_admitted=False)
    second = room.join(PeerId("p_second"), Role.PATIENT, "Jeanne", seat="u_1", pre_admitted=False)
    admission = room.admit(room.get(doctor), "p_first")  # type: ignore[arg-type]
    assert admission.replaced is None and room.is_second_device(second.peer)


def test_a_second_tab_of_the_doctor_replaces_the_first() -> None:
    room = Room("c_1")
    room.join(PeerId("p_old"), Role.DOCTOR, "Dr", seat="u_d", pre_admitted=False)
    result = room.join(PeerId("p_new"), Role.DOCTOR, "Dr", seat="u_d", pre_admitted=False)
    assert result.replaced is not None and result.peer.admitted and len(room) == 1


def test_joining_an_ended_room_is_refused() -> None:
    room = Room("c_1")
    (doctor,) = seated(room, Role.DOCTOR)
    room.end(room.get(doctor))  # type: ignore[arg-type]
    with pytest.raises(TeleconsultError) as info:
        seated(room, Role.PATIENT)
    assert info.value.code is ErrorCode.ENDED


def test_admit_deny_remove_need_an_existing_target_in_the_right_state() -> None:
    room = Room("c_1", Capacity(guest=1))
    (doctor,) = seated(room, Role.DOCTOR)
    (patient,) = seated(room, Role.PATIENT)
    actor = room.get(doctor)
    assert actor is not None
    with pytest.raises(TeleconsultError) as missing:
        room.admit(actor, "p_nobody")
    assert missing.value.code is ErrorCode.NOT_FOUND
    room.admit(actor, patient)
    with pytest.raises(TeleconsultError) as twice:
        room.admit(actor, patient)
    assert twice.value.code is ErrorCode.FORBIDDEN
    with pytest.raises(TeleconsultError) as deny_admitted:
        room.deny(actor, patient)
    assert deny_admitted.value.code is ErrorCode.FORBIDDEN
    with pytest.raises(TeleconsultError) as self_removal:
        room.remove(actor, doctor)
    assert self_removal.value.code is ErrorCode.FORBIDDEN
    assert room.remove(actor, patient).peer_id == patient
    (guest,) = seated(room, Role.GUEST)
    assert room.deny(actor, guest).peer_id == guest
    assert len(room) == 1


def test_relay_only_between_admitted_peers_of_the_room() -> None:
    room = Room("c_1")
    (doctor,) = seated(room, Role.DOCTOR)
    (patient,) = seated(room, Role.PATIENT)
    sender = room.get(doctor)
    assert sender is not None
    with pytest.raises(TeleconsultError) as waiting_target:
        room.relay_target(sender, "offer", patient)
    assert waiting_target.value.code is ErrorCode.FORBIDDEN
    with pytest.raises(TeleconsultError) as to_self:
        room.relay_target(sender, "offer", doctor)
    assert to_self.value.code is ErrorCode.FORBIDDEN
    room.admit(sender, patient)
    assert room.relay_target(sender, "candidate", patient).peer_id == patient


# --- the matrix: every (role, admitted?, ended?, message type) cell, derived from RULES --------------------------


def expected(role: Role, admitted: bool, ended: bool, kind: str) -> ErrorCode | None:
    rule = RULES[kind]
    if kind == "hello":
        return ErrorCode.FORBIDDEN
    if ended and not rule.after_end:
        return ErrorCode.ENDED
    if role not in rule.roles or (rule.admitted_only and not admitted):
        return ErrorCode.FORBIDDEN
    return None


CELLS = [
    cell
    for cell in itertools.product(sorted(ALL_ROLES), [True, False], [True, False], sorted(RULES))
    if cell[0] is not Role.DOCTOR or cell[1]  # a doctor is never waiting
]


@pytest.mark.parametrize(("role", "admitted", "ended", "kind"), CELLS)
def test_permission_matrix(role: Role, admitted: bool, ended: bool, kind: str) -> None:
    room = Room("c_1", Capacity(guest=1))
    (peer_id,) = seated(room, role, admitted=admitted)
    peer = room.get(peer_id)
    assert peer is not None
    room.ended = ended
    want = expected(role, admitted, ended, kind)
    if want is None:
        room.authorize(peer, kind)
    else:
        with pytest.raises(TeleconsultError) as info:
            room.authorize(peer, kind)
        assert info.value.code is want


def test_matrix_allows_what_each_role_needs() -> None:
    """Spot checks that the table says what DESIGN.md says, independent of the matrix helper above."""
    assert RULES["admit"].roles == {Role.DOCTOR}
    assert RULES["end"].roles == {Role.DOCTOR}
    assert Role.PATIENT in RULES["chat"].roles and RULES["chat"].admitted_only
    assert not RULES["ping"].admitted_only and RULES["ping"].after_end
