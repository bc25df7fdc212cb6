"""The acts as data: the amount in force on a day, the nurse's act for where she was, unconfirmed ones left off,
a malformed file refused with a message naming the entry, and ``teleconsult acts list``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from teleconsult import acts, clock
from teleconsult.acts import ActCatalog, BilledBy, InvalidCatalog, NursePlace, UnknownAct, format_euros

ROOT = Path(__file__).resolve().parent.parent
PACKAGED = ActCatalog.load()

#: A catalog with a tariff change: 10 EUR from 2020-01-01, 12.50 EUR from 2021-07-01.
CHANGING = """
[[code]]
code = "XA"
kind = "act"
billed_by = ["generalist", "specialist"]
label_fr = "Acte de test"
label_en = "Test act"

[[code.amount]]
amount = "10.00"
from = 2020-01-01
source = "test: first amount"

[[code.amount]]
amount = 1250
from = 2021-07-01
source = "test: the change"

[[code]]
code = "XM"
kind = "majoration"
billed_by = "generalist"
applies_to = ["XA"]
label_fr = "Majoration de test"
label_en = "Test majoration"

[[code.amount]]
amount = "2.00"
from = 2020-01-01
source = "test"

[[code.amount]]
amount = "3.00"
from = 2022-01-01
confirmed = false
"""


# --- the amount in force on a day ------------------------------------------------------------------------------


def test_the_amount_changes_on_the_day_of_the_change_not_the_day_before() -> None:
    catalog = ActCatalog.load(CHANGING)
    before = catalog.tariff("XA", date(2021, 6, 30))
    on = catalog.tariff("XA", date(2021, 7, 1))
    assert (before.amount_cents, before.valid_from, before.source) == (1000, date(2020, 1, 1), "test: first amount")
    assert (on.amount_cents, on.valid_from, on.source) == (1250, date(2021, 7, 1), "test: the change")
    assert catalog.tariff("XA", date(2030, 1, 1)).amount_cents == 1250


def test_an_act_is_not_in_force_before_its_first_amount() -> None:
    catalog = ActCatalog.load(CHANGING)
    with pytest.raises(UnknownAct, match=r"XA is not in force on 2019-12-31: its first amount holds from 2020-01-01"):
        catalog.tariff("XA", date(2019, 12, 31))
    assert catalog.in_force(date(2019, 12, 31)) == []
    assert [t.code for t in catalog.in_force(date(2020, 1, 1))] == ["XA", "XM"]


def test_tcg_from_the_packaged_file_25_euros_from_15_september_2018_and_still_after_22_december_2024() -> None:
    with pytest.raises(UnknownAct, match="not in force on 2018-09-14"):
        PACKAGED.tariff("TCG", date(2018, 9, 14))
    for day in (date(2018, 9, 15), date(2023, 11, 1), date(2024, 12, 21), date(2024, 12, 22), date(2026, 11, 30)):
        tcg = PACKAGED.tariff("TCG", day)
        assert (tcg.amount_cents, tcg.valid_from, tcg.kind) == (2500, date(2018, 9, 15), "act"), day
        assert tcg.billed_by == (BilledBy.GENERALIST,) and tcg.confirmed
        assert "legifrance.gouv.fr" in tcg.source and "ameli.fr" in tcg.source


def test_an_unknown_code_is_refused() -> None:
    with pytest.raises(UnknownAct, match="'G' is not a known act"):
        PACKAGED.tariff("G", date(2025, 1, 1))


def test_acts_for_a_profession_are_acts_only_the_usual_one_first() -> None:
    catalog = ActCatalog.load(CHANGING)
    assert [t.code for t in catalog.acts_for(BilledBy.SPECIALIST, date(2021, 1, 1))] == ["XA"]
    assert catalog.acts_for(BilledBy.NURSE, date(2021, 1, 1)) == []
    assert [t.code for t in PACKAGED.acts_for(BilledBy.GENERALIST, date(2025, 1, 1))] == ["TCG"]
    assert PACKAGED.acts_for(BilledBy.GENERALIST, date(2025, 1, 1), include_unconfirmed=True)[0].code == "TCG"
    assert [t.code for t in PACKAGED.acts_for(BilledBy.NURSE, date(2025, 1, 1))] == ["TLS", "TLL", "TLD"]


def test_majorations_for_an_act() -> None:
    catalog = ActCatalog.load(CHANGING)
    assert [(t.code, t.amount_cents) for t in catalog.majorations_for("XA", date(2021, 1, 1))] == [("XM", 200)]
    assert catalog.majorations_for("XM", date(2021, 1, 1)) == []


# --- the nurse's act for where she was -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("place", "code", "cents", "words"),
    [
        (NursePlace.PLANNED_VISIT, "TLS", 1000, "soin infirmier programmé"),
        (NursePlace.DEDICATED_PLACE, "TLL", 1200, "lieu dédié"),
        (NursePlace.HOME, "TLD", 1500, "domicile"),
    ],
)
def test_the_nurse_act_for_each_place(place: NursePlace, code: str, cents: int, words: str) -> None:
    found = PACKAGED.nurse_act(place, date(2025, 3, 1))
    assert (found.code, found.amount_cents, found.place, found.billed_by) == (code, cents, place, (BilledBy.NURSE,))
    assert words in found.label_fr and found.confirmed and found.source


def test_tll_is_the_dedicated_place_and_tld_the_patients_home() -> None:
    """Today's billing.py had these two labels swapped; the catalog must not."""
    tll, tld = PACKAGED.tariff("TLL", date(2025, 1, 1)), PACKAGED.tariff("TLD", date(2025, 1, 1))
    assert "domicile" not in tll.label_fr and "lieu dédié" in tll.label_fr and "dedicated" in tll.label("en")
    assert "lieu dédié" not in tld.label_fr and "domicile" in tld.label_fr and "home" in tld.label("en")


def test_no_nurse_act_before_the_nurses_codes() -> None:
    with pytest.raises(UnknownAct, match="no nurse act for home is in force on 2019-06-01"):
        PACKAGED.nurse_act(NursePlace.HOME, date(2019, 6, 1))


def test_a_label_in_each_language() -> None:
    tcg = PACKAGED.tariff("TCG", date(2025, 1, 1))
    assert tcg.label("fr") == "Téléconsultation du médecin généraliste"
    assert tcg.label("en") == "General practitioner's teleconsultation"
    assert tcg.label("de") == tcg.label_fr


# --- unconfirmed codes and amounts -----------------------------------------------------------------------------


def test_unconfirmed_codes_are_left_off_by_default() -> None:
    day = date(2025, 1, 1)
    assert "TC" not in [t.code for t in PACKAGED.in_force(day)]
    assert "TC" not in [t.code for t in PACKAGED.acts_for(BilledBy.SPECIALIST, day)]
    assert PACKAGED.majorations_for("TCG", day) == []
    with pytest.raises(UnknownAct, match="TC's amount on 2025-01-01 is not confirmed"):
        PACKAGED.tariff("TC", day)
    tc = PACKAGED.tariff("TC", day, include_unconfirmed=True)
    assert (tc.amount_cents, tc.confirmed) == (2300, False)
    assert [t.code for t in PACKAGED.majorations_for("TCG", day, include_unconfirmed=True)] == ["MEG"]
    assert all(t.confirmed for t in PACKAGED.in_force(day))
    assert not all(t.confirmed for t in PACKAGED.in_force(day, include_unconfirmed=True))


def test_an_unconfirmed_later_amount_takes_the_code_off_from_its_date() -> None:
    """The confirmed earlier amount may no longer hold: nothing is proposed rather than a stale amount."""
    catalog = ActCatalog.load(CHANGING)
    assert catalog.tariff("XM", date(2021, 12, 31)).amount_cents == 200
    assert catalog.majorations_for("XA", date(2022, 1, 1)) == []
    later = catalog.tariff("XM", date(2022, 1, 1), include_unconfirmed=True)
    assert (later.amount_cents, later.confirmed) == (300, False)


def test_every_confirmed_amount_in_the_packaged_file_cites_a_source() -> None:
    for day in (date(2018, 9, 15), date(2020, 1, 1), date(2026, 1, 1)):
        for tariff in PACKAGED.in_force(day, include_unconfirmed=True):
            assert tariff.source.strip(), tariff.code
            assert not tariff.confirmed or "http" in tariff.source, tariff.code


# --- a malformed file is refused -------------------------------------------------------------------------------


def _edit(old: str, new: str) -> str:
    assert old in CHANGING
    return CHANGING.replace(old, new, 1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (CHANGING + CHANGING[: CHANGING.index("[[code]]", 10)], r"code 'XA' appears twice"),
        (_edit("from = 2021-07-01", "from = 2019-07-01"), r"code XA, amount #2: 'from' 2019-07-01 is not after"),
        (_edit("from = 2021-07-01", "from = 2020-01-01"), r"code XA, amount #2: 'from' 2020-01-01 is not after"),
        (_edit('amount = "10.00"', 'amount = "-10.00"'), r"code XA, amount #1: 'amount' must be positive"),
        (_edit('amount = "10.00"', "amount = 0"), r"code XA, amount #1: 'amount' must be positive"),
        (_edit('amount = "10.00"', 'amount = "10.005"'), r"not a whole number of cents"),
        (_edit('amount = "10.00"', 'amount = "ten"'), r"'amount' 'ten' is not a decimal number of euros"),
        (_edit('amount = "10.00"', "amount = 10.0"), r"'amount' must be euros as a string"),
        (_edit('billed_by = ["generalist", "specialist"]', 'billed_by = "surgeon"'), r"'billed_by' 'surgeon'"),
        (_edit('kind = "act"', 'kind = "forfait"'), r"code XA: 'kind' must be one of act, majoration"),
        (_edit('source = "test: first amount"', 'source = " "'), r"code XA, amount #1: a confirmed amount needs"),
        (_edit('source = "test: first amount"', ""), r"code XA, amount #1: a confirmed amount needs its 'source'"),
        (_edit("from = 2020-01-01", "form = 2020-01-01"), r"code XA, amount #1: unknown key\(s\) form"),
        (_edit("from = 2020-01-01", 'from = "01/01/2020"'), r"'from' '01/01/2020' is not a date"),
        (_edit("from = 2020-01-01", "from = 2020-01-01T08:00:00"), r"'from' must be a date"),
        (_edit('applies_to = ["XA"]', 'applies_to = ["TCG"]'), r"majoration XM applies to 'TCG', which is not an act"),
        (_edit('applies_to = ["XA"]\n', ""), r"code XM: a majoration needs 'applies_to'"),
        (_edit('billed_by = ["generalist", "specialist"]', 'billed_by = "nurse"'), r"a nurse act needs a 'place'"),
        (_edit('label_en = "Test act"', 'label_en = "Test act"\nplace = "home"'), r"'place' is for nurse acts only"),
        (_edit('label_fr = "Acte de test"', ""), r"code XA: 'label_fr' must be a non-empty string"),
        (_edit('label_en = "Test act"', 'label_en = "Test act"\nconfirmed = "yes"'), r"'confirmed' must be true"),
        ("[[code]]\ncode = 'XA'\n", r"code XA: 'kind' must be one of"),
        ("title = 'acts'\n", r"unknown top-level key\(s\) title"),
        ("", r"no \[\[code\]\] entry"),
        ("[[code]\ncode = 'XA'", r"acts.toml: not valid TOML"),
    ],
)
def test_a_malformed_file_is_refused_with_a_message_naming_the_entry(text: str, message: str) -> None:
    with pytest.raises(InvalidCatalog, match=message):
        ActCatalog.load(text)


def test_the_changing_catalog_itself_is_valid() -> None:
    """The malformed cases above are each one edit away from a valid file."""
    assert ActCatalog.load(CHANGING).codes() == ("XA", "XM")


# --- shipped with the package ----------------------------------------------------------------------------------


def test_the_packaged_file_is_declared_as_package_data() -> None:
    """``pip install .`` (not only an editable install) ships it: pyproject's package-data names it."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["teleconsult"]
    packaged = ROOT / "teleconsult" / "data" / "acts.toml"
    assert packaged.is_file()
    assert any(packaged.relative_to(ROOT / "teleconsult").match(pattern) for pattern in patterns)


def test_the_packaged_catalog_is_read_once() -> None:
    assert acts.packaged() is acts.packaged()
    assert acts.packaged().codes() == PACKAGED.codes()


def test_docs_list_every_shipped_code() -> None:
    section = (ROOT / "docs" / "billing.md").read_text(encoding="utf-8").split("## Acts and amounts", 1)[1]
    section = section.split("\n## ", 1)[0]
    for code in PACKAGED.codes():
        assert re.search(rf"\| `{code}` \|", section), code


# --- amounts the French way ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cents", "text"), [(2500, "25,00 €"), (1250, "12,50 €"), (5, "0,05 €"), (123456, "1 234,56 €"), (-200, "-2,00 €")]
)
def test_format_euros(cents: int, text: str) -> None:
    assert format_euros(cents) == text


# --- teleconsult acts list -------------------------------------------------------------------------------------

LIST_2024_12_22 = """\
Acts in force on 2024-12-22 (Europe/Paris)
code  kind  billed by    amount  since       label
TCG   act   generalist  25,00 €  2018-09-15  Téléconsultation du médecin généraliste
TLS   act   nurse       10,00 €  2020-01-01  Accompagnement infirmier à la téléconsultation, au décours d'un soin infirmier programmé
TLL   act   nurse       12,00 €  2020-01-01  Accompagnement infirmier à la téléconsultation, dans un lieu dédié aux téléconsultations
TLD   act   nurse       15,00 €  2020-01-01  Accompagnement infirmier à la téléconsultation, au domicile du patient lors d'un déplacement dédié
"""  # noqa: E501


def _cli(*args: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from teleconsult.cli import main

    for name in [name for name in os.environ if name.startswith("TELECONSULT_")]:
        monkeypatch.delenv(name)
    code = main(list(args))
    return code, capsys.readouterr().out


def test_acts_list_on_a_date(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _cli("acts", "list", "--on", "2024-12-22", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0
    assert out == LIST_2024_12_22


def test_acts_list_before_any_act(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli("acts", "list", "--on", "2018-09-14", monkeypatch=monkeypatch, capsys=capsys) == (
        0,
        "no act in force on 2018-09-14\n",
    )


def test_acts_list_all_marks_the_unconfirmed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _cli("acts", "list", "--on", "2025-01-01", "--all", monkeypatch=monkeypatch, capsys=capsys)
    lines = out.splitlines()
    assert code == 0 and lines[1].split() == ["code", "kind", "billed", "by", "amount", "since", "confirmed", "label"]
    rows = {line.split()[0]: line for line in lines[2:-1]}
    assert re.search(r"^TC\s+act\s+specialist, generalist\s+23,00 €\s+2018-09-15\s+NO\s+Téléconsultation", rows["TC"])
    assert re.search(r"^TCG\s+act\s+generalist\s+25,00 €\s+2018-09-15\s+yes\s+", rows["TCG"])
    assert re.search(r"^MEG\s+majoration \(TCG\)\s+generalist\s+5,00 €", rows["MEG"])
    assert set(rows) == {"TCG", "TC", "TLS", "TLL", "TLD", "MEG", "MPC", "MCS"}
    assert lines[-1].startswith("Unconfirmed (confirmed: NO): never proposed for billing")


def test_acts_list_defaults_to_today_in_paris(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """22:30 UTC on 14 September 2018 is already the 15th in Paris: TCG is in force."""
    monkeypatch.setattr(clock, "now", lambda: datetime(2018, 9, 14, 22, 30, tzinfo=UTC))
    code, out = _cli("acts", "list", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0 and out.splitlines()[0] == "Acts in force on 2018-09-15 (Europe/Paris)"
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["TCG"]


def test_acts_list_refuses_a_bad_date(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        _cli("acts", "list", "--on", "2024-13-01", monkeypatch=monkeypatch, capsys=capsys)
    assert exited.value.code == 2
    assert "'2024-13-01' is not a date (YYYY-MM-DD)" in capsys.readouterr().err


def test_acts_list_as_a_user_runs_it(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "teleconsult", "--data-dir", str(tmp_path), "acts", "list", "--on", "2024-12-22"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == LIST_2024_12_22
