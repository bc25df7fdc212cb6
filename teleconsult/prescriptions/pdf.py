"""The ordonnance as a PDF, in the French layout: the prescriber at the top (name, RPPS, practice address and
phone), the date, the patient, the items, the prescription number, and a QR code that opens the public check page.
The only home of fpdf2 and segno.

Text is set in DejaVu Sans (Debian's fonts-dejavu-core) so that any name prints; without it, in the PDF core
font, characters it lacks become ``?``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import segno
from fpdf import FPDF

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
REGULAR, BOLD = FONT_DIR / "DejaVuSans.ttf", FONT_DIR / "DejaVuSans-Bold.ttf"


@dataclass(frozen=True, slots=True)
class Item:
    drug: str
    dosage: str
    duration: str


@dataclass(frozen=True, slots=True)
class Ordonnance:
    number: str
    prescription_id: str
    consultation_id: str
    issued_at: datetime  # Paris time, as printed
    doctor_name: str
    rpps: str
    address: str | None
    phone: str | None
    patient_name: str
    items: tuple[Item, ...]
    notes: str | None
    verify_url: str


def render(ordonnance: Ordonnance) -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_title(f"Ordonnance {ordonnance.number}")
    pdf.set_author(ordonnance.doctor_name)
    pdf.set_subject(f"RPPS {ordonnance.rpps}; consultation {ordonnance.consultation_id}")
    pdf.set_keywords(f"prescription:{ordonnance.prescription_id} rpps:{ordonnance.rpps}")
    pdf.set_creation_date(ordonnance.issued_at)
    pdf.add_page()
    font = _fonts(pdf)
    text = _Text(pdf, font)
    text.line(ordonnance.doctor_name, size=14, bold=True)
    text.line(f"Médecin — RPPS {ordonnance.rpps}", size=10)
    for detail in (ordonnance.address, f"Tél. {ordonnance.phone}" if ordonnance.phone else None):
        if detail:
            text.line(detail, size=10)
    pdf.ln(6)
    text.line(f"Fait le {ordonnance.issued_at:%d/%m/%Y à %H:%M}", size=10)
    text.line(f"Patient : {ordonnance.patient_name}", size=12, bold=True)
    pdf.ln(4)
    text.line("ORDONNANCE", size=13, bold=True)
    pdf.ln(2)
    for n, item in enumerate(ordonnance.items, start=1):
        text.line(f"{n}. {item.drug}", size=11, bold=True)
        text.line(f"    {item.dosage} — pendant {item.duration}", size=11)
        pdf.ln(1)
    if ordonnance.notes:
        pdf.ln(3)
        text.block(ordonnance.notes, size=10)
    pdf.ln(6)
    text.line(f"Ordonnance n° {ordonnance.number}", size=10, bold=True)
    text.line(f"Identifiant {ordonnance.prescription_id} · consultation {ordonnance.consultation_id}", size=8)
    text.line("Vérifier cette ordonnance :", size=9)
    text.line(ordonnance.verify_url, size=8)
    qr = io.BytesIO()
    segno.make(ordonnance.verify_url, error="m").save(qr, kind="png", scale=4, border=2)
    qr.seek(0)
    pdf.image(qr, x=pdf.w - 55, y=15, w=40, h=40)
    return bytes(pdf.output())


def _fonts(pdf: FPDF) -> str:
    if REGULAR.exists() and BOLD.exists():
        pdf.add_font("DejaVu", "", str(REGULAR))
        pdf.add_font("DejaVu", "B", str(BOLD))
        return "DejaVu"
    return "Helvetica"


class _Text:
    def __init__(self, pdf: FPDF, font: str):
        self._pdf = pdf
        self._font = font

    def _set(self, size: int, bold: bool) -> None:
        self._pdf.set_font(self._font, "B" if bold else "", size)

    def _safe(self, value: str) -> str:
        if self._font != "Helvetica":
            return value
        return value.encode("latin-1", "replace").decode("latin-1")

    def line(self, value: str, *, size: int, bold: bool = False) -> None:
        self._set(size, bold)
        self._pdf.cell(0, size * 0.55, self._safe(value), new_x="LMARGIN", new_y="NEXT")

    def block(self, value: str, *, size: int) -> None:
        self._set(size, False)
        self._pdf.multi_cell(0, size * 0.5, self._safe(value), new_x="LMARGIN", new_y="NEXT")
