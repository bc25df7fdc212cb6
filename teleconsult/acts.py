"""The billable acts and majorations of a teleconsultation, and the amount of each in force on a given day.

They are data, not code: ``teleconsult/data/acts.toml``, shipped with the package, lists each NGAP code, who bills
it, what it means, and its amounts with the day each starts to hold and its source. A tariff change is a new amount
in that file. The amount used on a day is the one whose ``from`` is the latest on or before that day; before an
act's first amount, it is not in force.

A code or an amount that could not be confirmed is marked ``confirmed = false`` and left off unless a caller asks
for it (``include_unconfirmed``): billing never proposes it. When the latest amount on a day is unconfirmed, the
code is left off on that day even if an earlier amount was confirmed (the confirmed one may no longer hold).

Pure: no I/O but reading the packaged file (``importlib.resources``).
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from importlib import resources
from typing import Any, TypeVar

_E = TypeVar("_E", bound=StrEnum)

#: The packaged catalog, inside the ``teleconsult`` package.
PACKAGED = ("data", "acts.toml")


class BilledBy(StrEnum):
    GENERALIST = "generalist"
    SPECIALIST = "specialist"
    NURSE = "nurse"


class NursePlace(StrEnum):
    """Where the nurse assisting a teleconsultation was: it decides her act (TLS, TLL, TLD)."""

    PLANNED_VISIT = "planned_visit"  # during a nursing visit already planned
    DEDICATED_PLACE = "dedicated_place"  # in a place dedicated to teleconsultation
    HOME = "home"  # at the patient's home, on a visit made for it


ACT = "act"
MAJORATION = "majoration"
KINDS = (ACT, MAJORATION)


class UnknownAct(ValueError):
    """The code is unknown, not in force on that day, or unconfirmed where unconfirmed ones are not allowed."""


class InvalidCatalog(ValueError):
    """The acts file is malformed; the message names the entry and the field."""


@dataclass(frozen=True, slots=True)
class Tariff:
    """One act or majoration as in force on a day: its amount is the one holding then."""

    code: str
    kind: str  # "act" | "majoration"
    billed_by: tuple[BilledBy, ...]
    label_fr: str
    label_en: str
    amount_cents: int
    valid_from: date
    source: str
    confirmed: bool
    place: NursePlace | None
    applies_to: tuple[str, ...]

    def label(self, language: str) -> str:
        """The label in ``language`` ("fr" or "en"); French otherwise."""
        return self.label_en if language == "en" else self.label_fr


@dataclass(frozen=True, slots=True)
class _Amount:
    cents: int
    valid_from: date
    source: str
    confirmed: bool


@dataclass(frozen=True, slots=True)
class _Code:
    code: str
    kind: str
    billed_by: tuple[BilledBy, ...]
    label_fr: str
    label_en: str
    place: NursePlace | None
    applies_to: tuple[str, ...]
    confirmed: bool
    amounts: tuple[_Amount, ...]  # ascending by valid_from

    def on(self, day: date) -> Tariff | None:
        """The tariff in force on ``day``, or None before the first amount."""
        current = None
        for amount in self.amounts:
            if amount.valid_from > day:
                break
            current = amount
        if current is None:
            return None
        return Tariff(
            code=self.code,
            kind=self.kind,
            billed_by=self.billed_by,
            label_fr=self.label_fr,
            label_en=self.label_en,
            amount_cents=current.cents,
            valid_from=current.valid_from,
            source=current.source,
            confirmed=self.confirmed and current.confirmed,
            place=self.place,
            applies_to=self.applies_to,
        )


class ActCatalog:
    """Every code of the acts file, in the file's order; questions are asked for a day."""

    def __init__(self, codes: tuple[_Code, ...]):
        self._codes = codes
        self._by_code = {entry.code: entry for entry in codes}

    @classmethod
    def load(cls, text: str | None = None) -> ActCatalog:
        """The packaged file, or ``text`` (a TOML document in the same form); raises ``InvalidCatalog``."""
        name = "acts.toml"
        if text is None:
            text = resources.files("teleconsult").joinpath(*PACKAGED).read_text(encoding="utf-8")
            name = "teleconsult/" + "/".join(PACKAGED)
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InvalidCatalog(f"{name}: not valid TOML: {exc}") from exc
        return cls(_parse(document, name))

    def codes(self) -> tuple[str, ...]:
        """Every code in the file, confirmed or not, in force on some day or not."""
        return tuple(entry.code for entry in self._codes)

    def in_force(self, day: date, *, include_unconfirmed: bool = False) -> list[Tariff]:
        """Every act and majoration in force on ``day``, in the file's order."""
        return list(self._in_force(day, include_unconfirmed))

    def tariff(self, code: str, day: date, *, include_unconfirmed: bool = False) -> Tariff:
        """The act or majoration ``code`` as in force on ``day``; raises ``UnknownAct`` with the reason."""
        entry = self._by_code.get(code)
        if entry is None:
            raise UnknownAct(f"{code!r} is not a known act or majoration")
        found = entry.on(day)
        if found is None:
            first = entry.amounts[0].valid_from.isoformat()
            raise UnknownAct(f"{code} is not in force on {day.isoformat()}: its first amount holds from {first}")
        if not found.confirmed and not include_unconfirmed:
            raise UnknownAct(f"{code}'s amount on {day.isoformat()} is not confirmed")
        return found

    def acts_for(self, billed_by: BilledBy, day: date, *, include_unconfirmed: bool = False) -> list[Tariff]:
        """The acts (not majorations) ``billed_by`` may bill on ``day``, in the file's order (the usual one first)."""
        return [t for t in self._in_force(day, include_unconfirmed) if t.kind == ACT and billed_by in t.billed_by]

    def nurse_act(self, place: NursePlace, day: date, *, include_unconfirmed: bool = False) -> Tariff:
        """The nurse's act for where she was; raises ``UnknownAct`` when none is in force on ``day``."""
        for found in self.acts_for(BilledBy.NURSE, day, include_unconfirmed=include_unconfirmed):
            if found.place is place:
                return found
        raise UnknownAct(f"no nurse act for {place.value} is in force on {day.isoformat()}")

    def majorations_for(self, code: str, day: date, *, include_unconfirmed: bool = False) -> list[Tariff]:
        """The majorations that may be added to act ``code`` on ``day``."""
        return [t for t in self._in_force(day, include_unconfirmed) if t.kind == MAJORATION and code in t.applies_to]

    def _in_force(self, day: date, include_unconfirmed: bool) -> Iterator[Tariff]:
        for entry in self._codes:
            found = entry.on(day)
            if found is not None and (found.confirmed or include_unconfirmed):
                yield found


@functools.cache
def packaged() -> ActCatalog:
    """The packaged catalog, read and checked once per process."""
    return ActCatalog.load()


def format_euros(cents: int) -> str:
    """An amount the French way: ``2500`` → ``25,00 €``, ``123456`` → ``1 234,56 €`` (plain spaces)."""
    sign = "-" if cents < 0 else ""
    euros, rest = divmod(abs(cents), 100)
    return f"{sign}{euros:,}".replace(",", " ") + f",{rest:02d} €"


# --- reading and checking the file ---------------------------------------------------------------------------

_CODE_KEYS = frozenset(
    {"code", "kind", "billed_by", "label_fr", "label_en", "place", "applies_to", "confirmed", "note", "amount"}
)
_AMOUNT_KEYS = frozenset({"amount", "from", "source", "confirmed"})


def _parse(document: Mapping[str, Any], name: str) -> tuple[_Code, ...]:
    unknown = set(document) - {"code"}
    if unknown:
        raise InvalidCatalog(f"{name}: unknown top-level key(s) {', '.join(sorted(unknown))}; expected [[code]]")
    entries = document.get("code")
    if not isinstance(entries, list) or not entries:
        raise InvalidCatalog(f"{name}: no [[code]] entry")
    codes: list[_Code] = []
    seen: set[str] = set()
    for index, raw in enumerate(entries, start=1):
        entry = _code(raw, name, index)
        if entry.code in seen:
            raise InvalidCatalog(f"{name}: code {entry.code!r} appears twice")
        seen.add(entry.code)
        codes.append(entry)
    acts = {entry.code for entry in codes if entry.kind == ACT}
    for entry in codes:
        for target in entry.applies_to:
            if target not in acts:
                raise InvalidCatalog(f"{name}: majoration {entry.code} applies to {target!r}, which is not an act here")
    return tuple(codes)


def _code(raw: Any, name: str, index: int) -> _Code:
    if not isinstance(raw, dict):
        raise InvalidCatalog(f"{name}: [[code]] #{index} is not a table")
    code = raw.get("code")
    if not isinstance(code, str) or not code.strip() or code != code.strip():
        raise InvalidCatalog(f"{name}: [[code]] #{index}: 'code' must be a non-empty string without surrounding spaces")
    where = f"{name}: code {code}"
    unknown = set(raw) - _CODE_KEYS
    if unknown:
        raise InvalidCatalog(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise InvalidCatalog(f"{where}: 'kind' must be one of {', '.join(KINDS)}, not {kind!r}")
    billed_by = tuple(_enum(BilledBy, value, where, "billed_by") for value in _strings(raw, "billed_by", where))
    if not billed_by:
        raise InvalidCatalog(f"{where}: 'billed_by' names no one")
    labels = {key: _text(raw, key, where) for key in ("label_fr", "label_en")}
    place = raw.get("place")
    nurse_place = None if place is None else _enum(NursePlace, place, where, "place")
    if kind == ACT and billed_by == (BilledBy.NURSE,) and nurse_place is None:
        raise InvalidCatalog(f"{where}: a nurse act needs a 'place' ({', '.join(NursePlace)})")
    if nurse_place is not None and (kind != ACT or BilledBy.NURSE not in billed_by):
        raise InvalidCatalog(f"{where}: 'place' is for nurse acts only")
    applies_to = _strings(raw, "applies_to", where) if "applies_to" in raw else ()
    if kind == MAJORATION and not applies_to:
        raise InvalidCatalog(f"{where}: a majoration needs 'applies_to' (the act codes it is added to)")
    if kind == ACT and applies_to:
        raise InvalidCatalog(f"{where}: 'applies_to' is for majorations only")
    confirmed = _flag(raw, where)
    if "note" in raw and not isinstance(raw["note"], str):
        raise InvalidCatalog(f"{where}: 'note' must be a string")
    amounts = raw.get("amount")
    if not isinstance(amounts, list) or not amounts:
        raise InvalidCatalog(f"{where}: no [[code.amount]]")
    parsed: list[_Amount] = []
    for index, value in enumerate(amounts, start=1):
        amount = _amount(value, f"{where}, amount #{index}", confirmed)
        if parsed and amount.valid_from <= parsed[-1].valid_from:
            raise InvalidCatalog(
                f"{where}, amount #{index}: 'from' {amount.valid_from.isoformat()} is not after "
                f"{parsed[-1].valid_from.isoformat()}: amounts go in ascending date order"
            )
        parsed.append(amount)
    return _Code(
        code=code,
        kind=kind,
        billed_by=billed_by,
        label_fr=labels["label_fr"],
        label_en=labels["label_en"],
        place=nurse_place,
        applies_to=applies_to,
        confirmed=confirmed,
        amounts=tuple(parsed),
    )


def _amount(raw: Any, where: str, code_confirmed: bool) -> _Amount:
    if not isinstance(raw, dict):
        raise InvalidCatalog(f"{where}: not a table")
    unknown = set(raw) - _AMOUNT_KEYS
    if unknown:
        raise InvalidCatalog(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    cents = _cents(raw.get("amount"), where)
    valid_from = raw.get("from")
    if isinstance(valid_from, str):
        try:
            valid_from = date.fromisoformat(valid_from)
        except ValueError:
            raise InvalidCatalog(f"{where}: 'from' {valid_from!r} is not a date (YYYY-MM-DD)") from None
    if type(valid_from) is not date:  # a TOML datetime is a date subclass: refuse it too
        raise InvalidCatalog(f"{where}: 'from' must be a date (YYYY-MM-DD), not {valid_from!r}")
    source = raw.get("source", "")
    if not isinstance(source, str):
        raise InvalidCatalog(f"{where}: 'source' must be a string")
    confirmed = _flag(raw, where)
    if code_confirmed and confirmed and not source.strip():
        raise InvalidCatalog(f"{where}: a confirmed amount needs its 'source'")
    return _Amount(cents=cents, valid_from=valid_from, source=" ".join(source.split()), confirmed=confirmed)


def _cents(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidCatalog(f"{where}: 'amount' must be euros as a string (\"25.00\") or cents as an integer (2500)")
    if isinstance(value, int):
        cents = value
    else:
        try:
            euros = Decimal(value.strip())
        except InvalidOperation:
            raise InvalidCatalog(f"{where}: 'amount' {value!r} is not a decimal number of euros") from None
        if not euros.is_finite() or euros != euros.quantize(Decimal("0.01")):
            raise InvalidCatalog(f"{where}: 'amount' {value!r} is not a whole number of cents")
        cents = int(euros * 100)
    if cents <= 0:
        raise InvalidCatalog(f"{where}: 'amount' must be positive, not {value!r}")
    return cents


def _strings(raw: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = raw.get(key)
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
        raise InvalidCatalog(f"{where}: {key!r} must be a string or a list of strings")
    if len(set(values)) != len(values):
        raise InvalidCatalog(f"{where}: {key!r} repeats a value")
    return tuple(values)


def _text(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidCatalog(f"{where}: {key!r} must be a non-empty string")
    return value.strip()


def _flag(raw: Mapping[str, Any], where: str) -> bool:
    value = raw.get("confirmed", True)
    if not isinstance(value, bool):
        raise InvalidCatalog(f"{where}: 'confirmed' must be true or false")
    return value


def _enum(kind: type[_E], value: Any, where: str, key: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise InvalidCatalog(f"{where}: {key!r} {value!r} is not one of {allowed}") from None
