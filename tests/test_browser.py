"""End to end in Debian's Chromium: a doctor and a patient, each in their own browser context, hold a consultation.

Set ``TELECONSULT_SHOTS=/some/dir`` to also save a screenshot of each page on the way.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright, expect
from sqlalchemy import select, update

from teleconsult.api.keys import SIGNALING, SOCKETS
from teleconsult.app import DATABASE
from teleconsult.store.models import Consultation, Participant

pytestmark = pytest.mark.browser

WAIT_MS = 15_000
CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
REMOTE_VIDEO_PLAYING = """() => {
    const video = document.querySelector('[data-testid=remote-video]');
    return Boolean(video && video.videoWidth > 0 && !video.paused && video.readyState >= 2);
}"""
SHOTS = os.environ.get("TELECONSULT_SHOTS")


def browser_env(tmp_path: Path) -> dict[str, str]:
    """Chromium writes under $HOME and the XDG folders: give it its own, under the test's temporary folder."""
    home = tmp_path / "browser-home"
    folders = {
        "HOME": home,
        "XDG_CONFIG_HOME": home / ".config",
        "XDG_CACHE_HOME": home / ".cache",
        "XDG_RUNTIME_DIR": home / "runtime",
    }
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    folders["XDG_RUNTIME_DIR"].chmod(0o700)
    env = {name: str(path) for name, path in folders.items()}
    env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
    env["LANG"] = "C.UTF-8"
    return env


@pytest.fixture
async def browser(chromium_path: str, tmp_path: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS, env=browser_env(tmp_path)
        )
        try:
            yield launched
        finally:
            await launched.close()


class PageErrors:
    """Uncaught script errors and console errors of the pages under test (a CSP violation shows up here)."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def watch(self, page: Page, who: str) -> Page:
        page.on("pageerror", lambda error: self.errors.append(f"{who}: uncaught {error}"))

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error" and "favicon" not in message.text:
                self.errors.append(f"{who}: console {message.text}")

        page.on("console", on_console)
        return page


async def new_context(browser: Browser, base_url: str, viewport: dict[str, int], **extra: Any) -> BrowserContext:
    context = await browser.new_context(
        base_url=base_url,
        viewport=viewport,
        permissions=["camera", "microphone"],
        locale="fr-FR",
        timezone_id="Europe/Paris",
        **extra,
    )
    context.set_default_timeout(WAIT_MS)
    return context


async def shot(page: Page, name: str) -> None:
    if SHOTS:  # Playwright creates the folder
        await page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


async def log_in(page: Page, email: str, password: str) -> None:
    await page.goto("/login")
    await page.get_by_test_id("login-email").fill(email)
    await page.get_by_test_id("login-password").fill(password)
    await page.get_by_test_id("login-submit").click()
    await page.wait_for_url("**/doctor", timeout=WAIT_MS)


def mails_to(outbox: Path, address: str) -> list[EmailMessage]:
    """The mails the test server wrote as .eml files, addressed to `address`."""
    found = []
    for path in sorted(outbox.glob("*.eml")):
        message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        to = message["To"]
        if to is not None and any(a.addr_spec == address for a in to.addresses):
            found.append(message)
    return found


async def wait_for_mails_to(outbox: Path, address: str, count: int = 1) -> list[EmailMessage]:
    deadline = time.monotonic() + WAIT_MS / 1000
    while True:
        found = mails_to(outbox, address)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.1)


def unexpected(errors: list[str], *statuses: int) -> list[str]:
    """Console errors, less the failed loads of the error answers a test provokes on purpose."""
    return [e for e in errors if not any(f"status of {status}" in e for status in statuses)]


async def test_doctor_and_patient_hold_a_consultation(browser: Browser, live_server: Any) -> None:
    watcher = PageErrors()
    doctor_context = await new_context(browser, live_server.url, DESKTOP)
    patient_context = await new_context(browser, live_server.url, PHONE, is_mobile=True, has_touch=True)
    try:
        doctor = watcher.watch(await doctor_context.new_page(), "doctor")
        patient = watcher.watch(await patient_context.new_page(), "patient")
        sockets: dict[str, list[str]] = {"doctor": [], "patient": []}
        doctor.on("websocket", lambda ws: sockets["doctor"].append(ws.url))
        patient.on("websocket", lambda ws: sockets["patient"].append(ws.url))

        # The doctor logs in and creates a consultation.
        await log_in(doctor, live_server.doctor_email, live_server.doctor_password)
        await doctor.get_by_test_id("new-patient-name").fill("Jeanne Dupont")
        await doctor.get_by_test_id("new-patient-email").fill("jeanne.dupont@example.org")
        await doctor.get_by_test_id("new-submit").click()
        link_box = doctor.get_by_test_id("patient-link")
        await expect(link_box).to_have_value(re.compile(r"^https?://.+/j/.+"), timeout=WAIT_MS)
        patient_link = await link_box.input_value()
        await expect(doctor.get_by_test_id("consultation-row").first).to_contain_text("Jeanne Dupont")
        await shot(doctor, "dashboard-desktop")

        # The patient opens the link, consents and waits.
        await patient.goto(patient_link)
        await expect(patient.get_by_test_id("join")).to_be_visible()
        await patient.get_by_test_id("consent").check()
        await patient.get_by_test_id("join").click()
        await expect(patient.get_by_test_id("waiting")).to_be_visible(timeout=WAIT_MS)
        await expect(patient.get_by_test_id("call-status")).to_have_attribute("data-state", "waiting")
        await shot(patient, "waiting-phone")

        # The doctor opens the call page and lets the patient in.
        await doctor.get_by_test_id("start-call").click()
        await doctor.wait_for_url("**/c/*", timeout=WAIT_MS)
        admit = doctor.get_by_test_id("admit")
        await expect(admit).to_be_visible(timeout=WAIT_MS)
        # The patient's device reported what it can do; the doctor sees it before admitting.
        await expect(doctor.get_by_test_id("lobby-ready")).to_contain_text("Caméra ✓", timeout=WAIT_MS)
        await admit.click()

        # Both see and hear each other.
        for page in (doctor, patient):
            await page.wait_for_function(REMOTE_VIDEO_PLAYING, timeout=WAIT_MS)
            await expect(page.get_by_test_id("call-status")).to_have_attribute("data-state", "connected")
        await expect(patient.get_by_test_id("waiting")).to_be_hidden()
        # Both sockets named the same room (a worker or a proxy sends them to one process), not the consultation id.
        rooms = {urlsplit(url).query for who in sockets for url in sockets[who]}
        assert len(rooms) == 1 and re.fullmatch(r"room=[0-9a-f]{8}", rooms.pop()), sockets

        # Chat.
        await patient.get_by_test_id("chat-input").fill("Bonjour docteur")
        await patient.get_by_test_id("chat-send").click()
        await expect(doctor.get_by_test_id("chat-log")).to_contain_text("Bonjour docteur", timeout=WAIT_MS)
        await expect(doctor.get_by_test_id("chat-log")).to_contain_text("Jeanne Dupont")
        await shot(doctor, "call-desktop")
        await shot(patient, "call-phone")

        # The network drops every socket: both pages resume their seats, and the call goes on.
        signaling = live_server.app[SIGNALING]
        seated = signaling.peer_ids()
        assert len(seated) == 2
        for conn in list(live_server.app[SOCKETS]):
            conn.close_soon(4000, "network drop")
        for page in (doctor, patient):
            await expect(page.get_by_test_id("call-status")).to_have_attribute(
                "data-state", "connected", timeout=WAIT_MS
            )
            await page.wait_for_function(REMOTE_VIDEO_PLAYING, timeout=WAIT_MS)
        assert signaling.peer_ids() == seated  # the same peers: resumed, not rejoined
        await expect(doctor.get_by_test_id("remote-video")).to_have_count(1)
        await patient.get_by_test_id("chat-input").fill("Je suis revenue")
        await patient.get_by_test_id("chat-send").click()
        await expect(doctor.get_by_test_id("chat-log")).to_contain_text("Je suis revenue", timeout=WAIT_MS)

        # The patient reloads a frozen page: the tab's resume token brings them straight back, still admitted,
        # with no form and no waiting room; the doctor's page answers the new peer connection.
        await patient.reload()
        await expect(patient.get_by_test_id("call-status")).to_have_attribute("data-state", "connected")
        await expect(patient.get_by_test_id("waiting")).to_be_hidden()
        for page in (doctor, patient):
            await page.wait_for_function(REMOTE_VIDEO_PLAYING, timeout=WAIT_MS)
        assert signaling.peer_ids() == seated  # resumed: the same peer, not a new one
        await expect(doctor.get_by_test_id("remote-video")).to_have_count(1)

        # The link forwarded, or opened on another device: it waits, and the doctor sees it is a second device.
        other_context = await new_context(browser, live_server.url, PHONE)
        try:
            other = watcher.watch(await other_context.new_page(), "second device")
            await other.goto(patient_link)
            await other.get_by_test_id("consent").check()
            await other.get_by_test_id("join").click()
            await expect(other.get_by_test_id("waiting")).to_be_visible(timeout=WAIT_MS)
            entry = doctor.get_by_test_id("lobby-entry")
            await expect(entry.get_by_test_id("lobby-name")).to_have_text("Jeanne Dupont, deuxième appareil")
            await expect(entry.get_by_test_id("second-device")).to_be_visible()
            await shot(doctor, "second-device-desktop")
            await entry.get_by_test_id("deny").click()
            await expect(other.get_by_test_id("call-status")).to_have_attribute("data-state", "left")
            await expect(patient.get_by_test_id("call-status")).to_have_attribute("data-state", "connected")
            assert signaling.peer_ids() == seated
        finally:
            await other_context.close()

        # Mute and camera are toggles.
        mute = doctor.get_by_test_id("mute")
        await mute.click()
        await expect(mute).to_have_attribute("aria-pressed", "true")
        await mute.click()
        await expect(mute).to_have_attribute("aria-pressed", "false")

        # The doctor ends the consultation for everyone, after seeing the proposed acts and confirming.
        await doctor.get_by_test_id("end").click()
        proposed = doctor.get_by_test_id("billing-proposed")
        await expect(proposed).to_contain_text("25,00", timeout=WAIT_MS)
        await expect(doctor.get_by_test_id("billing-act")).to_have_value("TCG")
        status = doctor.get_by_test_id("billing-status")
        await status.select_option("not_billable")
        await expect(doctor.get_by_test_id("billing-reason")).to_be_visible()
        await expect(proposed).to_contain_text("Rien ne sera facturé")
        await status.select_option("completed")
        await expect(proposed).to_contain_text("25,00")
        await shot(doctor, "end-billing-desktop")
        await doctor.get_by_test_id("end-confirm").click()
        for page in (doctor, patient):
            await expect(page.get_by_test_id("call-status")).to_have_attribute("data-state", "ended", timeout=WAIT_MS)
        await expect(doctor.get_by_test_id("billing")).to_contain_text("TCG", timeout=WAIT_MS)
        await shot(doctor, "ended-desktop")

        # The dashboard shows it ended, with its billing act.
        await doctor.get_by_test_id("back-dashboard").click()
        await doctor.wait_for_url("**/doctor", timeout=WAIT_MS)
        row = doctor.get_by_test_id("consultation-row").first
        await expect(row).to_have_attribute("data-status", "ended", timeout=WAIT_MS)
        await expect(row).to_contain_text("TCG")
        await expect(row).to_contain_text("Terminée")
        await expect(row.get_by_test_id("consultation-open")).to_have_count(0)

        # The month's summary counts it, and the export button downloads a CSV that parses.
        summary = doctor.get_by_test_id("billing-summary")
        await expect(summary.locator('[data-status="completed"]')).to_contain_text("1", timeout=WAIT_MS)
        await expect(doctor.get_by_test_id("billing-acts")).to_contain_text("TCG × 1")
        await expect(doctor.get_by_test_id("billing-total")).to_contain_text("25,00")
        async with doctor.expect_download() as download_info:
            await doctor.get_by_test_id("billing-export").click()
        download = await download_info.value
        exported = Path(await download.path()).read_text(encoding="utf-8-sig")
        rows = list(csv.DictReader(io.StringIO(exported), delimiter=";", strict=True))
        assert len(rows) == 1 and any(value == "TCG" for value in rows[0].values()), rows
        assert watcher.errors == []
    finally:
        await doctor_context.close()
        await patient_context.close()


async def test_bad_link_and_wrong_password(browser: Browser, live_server: Any) -> None:
    watcher = PageErrors()
    context = await new_context(browser, live_server.url, PHONE)
    try:
        page = watcher.watch(await context.new_page(), "visitor")

        await page.goto("/j/this-is-not-a-real-invitation-token")
        await expect(page.get_by_test_id("join-error")).to_be_visible()
        await expect(page.get_by_test_id("join-error")).to_contain_text("cabinet")
        await expect(page.get_by_test_id("consent")).to_have_count(0)
        await expect(page.get_by_test_id("join")).to_have_count(0)

        await page.goto("/login")
        await shot(page, "login-phone")
        await expect(page.get_by_test_id("login-error")).to_be_hidden()
        await page.get_by_test_id("login-email").fill(live_server.doctor_email)
        await page.get_by_test_id("login-password").fill("not the password")
        await page.get_by_test_id("login-submit").click()
        error = page.get_by_test_id("login-error")
        await expect(error).to_be_visible(timeout=WAIT_MS)
        await expect(error).to_contain_text("incorrect")
        assert page.url.endswith("/login")

        # The language switch gives the English page.
        await page.goto("/login?lang=en")
        await expect(page.locator("html")).to_have_attribute("lang", "en")
        await expect(page.get_by_test_id("login-submit")).to_have_text("Sign in")
        # A 401 from the API, and the 404 of the unknown link's page, show in the browser console as failed
        # resource loads; that is expected here.
        assert unexpected(watcher.errors, 401, 404) == []
    finally:
        await context.close()


async def test_dashboard_shows_mail_status_resend_and_cancel(browser: Browser, live_server: Any) -> None:
    watcher = PageErrors()
    doctor_context = await new_context(browser, live_server.url, DESKTOP)
    patient_context = await new_context(browser, live_server.url, PHONE, is_mobile=True, has_touch=True)
    try:
        doctor = watcher.watch(await doctor_context.new_page(), "doctor")
        patient = watcher.watch(await patient_context.new_page(), "patient")

        # The doctor creates a consultation with a nurse; the page says the invitations are being emailed.
        await log_in(doctor, live_server.doctor_email, live_server.doctor_password)
        await doctor.get_by_test_id("new-patient-name").fill("Jeanne Dupont")
        await doctor.get_by_test_id("new-patient-email").fill("jeanne.dupont@example.org")
        await doctor.get_by_test_id("new-nurse-name").fill("Inès Robert")
        await doctor.get_by_test_id("new-nurse-email").fill("ines.robert@example.org")
        await doctor.get_by_test_id("new-submit").click()
        link_box = doctor.get_by_test_id("patient-link")
        await expect(link_box).to_have_value(re.compile(r"^https?://.+/j/.+"), timeout=WAIT_MS)
        first_link = await link_box.input_value()
        await expect(doctor.get_by_test_id("created-sending")).to_contain_text("jeanne.dupont@example.org")
        await expect(doctor.get_by_test_id("created-sending")).to_contain_text("en cours d'envoi")

        # The row follows each invitation mail until it is sent (the test server writes .eml files).
        row = doctor.get_by_test_id("consultation-row").first
        patient_line = row.locator('[data-testid="invitation"][data-role="patient"]')
        nurse_line = row.locator('[data-testid="invitation"][data-role="nurse"]')
        await expect(patient_line).to_contain_text("Jeanne Dupont")
        await expect(nurse_line).to_contain_text("Inès Robert")
        await expect(patient_line.get_by_test_id("invitation-email")).to_have_text("jeanne.dupont@example.org")
        await expect(nurse_line.get_by_test_id("invitation-email")).to_have_text("ines.robert@example.org")
        patient_mail = patient_line.get_by_test_id("invitation-status")
        await expect(patient_mail).to_have_attribute("data-status", "sent", timeout=WAIT_MS)
        await expect(patient_mail).to_have_text("Invitation envoyée")
        await expect(nurse_line.get_by_test_id("invitation-status")).to_have_attribute(
            "data-status", "sent", timeout=WAIT_MS
        )
        assert list((live_server.settings.server.data_dir / "outbox").glob("*.eml"))

        # Resend to the patient: a new link, shown to copy, mailed again.
        resend = patient_line.get_by_test_id("resend")
        await expect(resend).to_have_attribute("aria-label", "Renvoyer l'invitation à Jeanne Dupont")
        await resend.click()
        resent_link = row.get_by_test_id("resent-link")
        await expect(resent_link).to_be_visible(timeout=WAIT_MS)
        await expect(resent_link).to_have_value(re.compile(r"^https?://[^/]+/j/[A-Za-z0-9_-]{43}$"))
        new_link = await resent_link.input_value()
        assert new_link != first_link
        await expect(row.get_by_test_id("resent-notice")).to_have_text(
            "Nouveau lien envoyé à jeanne.dupont@example.org ; l'ancien lien ne fonctionne plus."
        )
        await expect(link_box).to_have_value(new_link)  # the creation box no longer shows the dead link
        await expect(patient_mail).to_have_attribute("data-status", "sent", timeout=WAIT_MS)
        await expect(resent_link).to_have_value(new_link)  # still there after the list refreshed
        await expect(resent_link).to_be_focused()  # and still focused, ready to copy
        await shot(doctor, "dashboard-resent-desktop")
        await doctor.set_viewport_size(PHONE)
        await shot(doctor, "dashboard-resent-phone")
        await doctor.set_viewport_size(DESKTOP)

        # The old link no longer opens the consultation; the new one does.
        await patient.goto(first_link)
        await expect(patient.get_by_test_id("join-error")).to_be_visible()
        await expect(patient.get_by_test_id("consent")).to_have_count(0)
        await patient.goto(new_link)
        await expect(patient.get_by_test_id("consent")).to_be_visible()

        # Cancelling asks first, in the page, and says the invited will be told by email.
        await row.get_by_test_id("cancel").click()
        panel = row.get_by_test_id("cancel-panel")
        await expect(panel).to_be_visible()
        await expect(panel).to_contain_text("Jeanne Dupont et Inès Robert seront prévenus par e-mail")
        await expect(panel).to_be_focused()
        await doctor.keyboard.press("Escape")  # closes it, as a dialog would
        await expect(panel).to_have_count(0)
        await expect(row.get_by_test_id("cancel")).to_be_focused()
        await row.get_by_test_id("cancel").click()
        await row.get_by_test_id("cancel-dismiss").click()
        await expect(panel).to_have_count(0)
        await expect(row).to_have_attribute("data-status", "scheduled")
        await row.get_by_test_id("cancel").click()
        await shot(doctor, "dashboard-cancel-desktop")
        await doctor.set_viewport_size(PHONE)
        await shot(doctor, "dashboard-cancel-phone")
        await doctor.set_viewport_size(DESKTOP)
        await row.get_by_test_id("cancel-confirm").click()
        await expect(row).to_have_attribute("data-status", "cancelled", timeout=WAIT_MS)
        await expect(row.get_by_test_id("consultation-status")).to_have_text("Annulée")
        await expect(row.get_by_test_id("row-notice")).to_contain_text("prévenues par e-mail")
        for gone in ("resend", "fix-email", "cancel", "consultation-open", "resent-link"):
            await expect(row.get_by_test_id(gone)).to_have_count(0)
        # Each line says whether the cancellation notice went out (the test server writes it at once).
        for line in (patient_line, nurse_line):
            notice = line.get_by_test_id("cancellation-status")
            await expect(notice).to_have_attribute("data-status", "sent", timeout=WAIT_MS)
            await expect(notice).to_have_text("Prévenu(e) par e-mail")
            await expect(line.get_by_test_id("invitation-status")).to_have_count(0)
        await shot(doctor, "dashboard-cancelled-desktop")
        await doctor.set_viewport_size(PHONE)
        await shot(doctor, "dashboard-cancelled-phone")

        # Every link is revoked.
        await patient.goto(new_link)
        await expect(patient.get_by_test_id("join-error")).to_be_visible()
        await expect(patient.get_by_test_id("consent")).to_have_count(0)
        assert unexpected(watcher.errors, 404, 410) == []  # the revoked links' pages answer 404 and 410
    finally:
        await doctor_context.close()
        await patient_context.close()


async def test_doctor_corrects_a_refused_address(browser: Browser, live_server: Any) -> None:
    """The test server never refuses a mail, so the address form is reached from « Modifier l'adresse », which
    every line of an open consultation offers (a refused mail offers it as « Corriger l'adresse »)."""
    watcher = PageErrors()
    doctor_context = await new_context(browser, live_server.url, DESKTOP)
    patient_context = await new_context(browser, live_server.url, PHONE, is_mobile=True, has_touch=True)
    outbox = live_server.settings.server.data_dir / "outbox"
    mistyped, corrected = "jeanne.dupont@exemple.org", "jeanne.dupont@example.org"
    try:
        doctor = watcher.watch(await doctor_context.new_page(), "doctor")
        patient = watcher.watch(await patient_context.new_page(), "patient")

        await log_in(doctor, live_server.doctor_email, live_server.doctor_password)
        await doctor.get_by_test_id("new-patient-name").fill("Jeanne Dupont")
        await doctor.get_by_test_id("new-patient-email").fill(mistyped)
        await doctor.get_by_test_id("new-submit").click()
        row = doctor.get_by_test_id("consultation-row").first
        line = row.locator('[data-testid="invitation"][data-role="patient"]')
        await expect(line.get_by_test_id("invitation-email")).to_have_text(mistyped, timeout=WAIT_MS)
        await expect(line.get_by_test_id("invitation-status")).to_have_attribute("data-status", "sent", timeout=WAIT_MS)
        assert len(await wait_for_mails_to(outbox, mistyped)) == 1

        # The form opens in the line, labelled, with the current address to correct.
        fix = line.get_by_test_id("fix-email")
        await expect(fix).to_have_text("Modifier l'adresse")
        await expect(fix).to_have_attribute("aria-expanded", "false")
        await fix.click()
        await expect(fix).to_have_attribute("aria-expanded", "true")
        field = line.get_by_test_id("fix-email-input")
        await expect(field).to_be_focused()
        await expect(field).to_have_value(mistyped)
        await expect(field).to_have_attribute("type", "email")
        labelled = line.get_by_label("Adresse e-mail de Jeanne Dupont", exact=True)
        await expect(labelled).to_have_attribute("data-testid", "fix-email-input")
        submit = line.get_by_test_id("fix-email-submit")
        await expect(submit).to_have_text("Renvoyer à cette adresse")
        error = line.get_by_test_id("fix-email-error")

        # An address the server refuses (the browser would take it), then an appointment too far past (moved
        # back two days in the database for the moment); both in French, the form kept open.
        await field.fill("jeanne@localhost")
        await submit.click()
        await expect(error).to_have_text("Adresse e-mail invalide.", timeout=WAIT_MS)
        await expect(field).to_have_attribute("aria-invalid", "true")
        await expect(field).to_be_focused()
        await reschedule(live_server, mistyped, datetime.now(UTC) - timedelta(days=2))
        await field.fill(corrected)
        await field.press("Enter")
        await expect(error).to_have_text(
            "Le rendez-vous est passé depuis plus d'un jour : créez une nouvelle consultation.", timeout=WAIT_MS
        )
        await reschedule(live_server, mistyped, None)
        await expect(field).to_have_value(corrected)
        await shot(doctor, "dashboard-fix-error-desktop")

        # The corrected address: a new link, shown as after a resend; the line shows the new address.
        await submit.click()
        resent_link = row.get_by_test_id("resent-link")
        await expect(resent_link).to_have_value(re.compile(r"^https?://[^/]+/j/[A-Za-z0-9_-]{43}$"), timeout=WAIT_MS)
        await expect(resent_link).to_be_focused()
        await expect(row.get_by_test_id("resent-notice")).to_have_text(
            f"Adresse corrigée : nouveau lien envoyé à {corrected} ; l'ancien lien ne fonctionne plus."
        )
        await expect(line.get_by_test_id("fix-email-form")).to_have_count(0)
        await expect(doctor.get_by_test_id("created-sending")).to_contain_text(corrected)
        await expect(doctor.get_by_test_id("patient-link")).to_have_value(await resent_link.input_value())
        await expect(fix).to_have_attribute("aria-expanded", "false")
        await expect(line.get_by_test_id("invitation-email")).to_have_text(corrected, timeout=WAIT_MS)
        await expect(line.get_by_test_id("invitation-status")).to_have_attribute("data-status", "sent", timeout=WAIT_MS)
        new_link = await resent_link.input_value()
        await shot(doctor, "dashboard-fixed-desktop")

        # The new invitation went to the corrected address, and only there.
        sent = await wait_for_mails_to(outbox, corrected)
        assert len(sent) == 1
        assert len(mails_to(outbox, mistyped)) == 1
        assert new_link in sent[0].get_body(preferencelist=("plain",)).get_content()

        # The patient's page says, before consenting, that exchanged documents are encrypted.
        await patient.goto(new_link)
        privacy = patient.get_by_test_id("privacy")
        await expect(privacy).to_contain_text("chiffrés")
        await expect(privacy).to_contain_text("ne sont accessibles qu'aux participants")
        await expect(patient.get_by_test_id("consent")).to_be_visible()
        await shot(patient, "prejoin-phone")
        assert unexpected(watcher.errors, 400, 409) == []
    finally:
        await doctor_context.close()
        await patient_context.close()


async def reschedule(live_server: Any, patient_email: str, when: datetime | None) -> None:
    """Move the appointment of the consultation whose patient has this address (the test cannot move time)."""
    invited = select(Participant.consultation_id).where(Participant.email == patient_email)
    async with live_server.app[DATABASE].transaction() as tx:
        await tx.execute(update(Consultation).where(Consultation.id.in_(invited)).values(scheduled_at=when))


async def test_a_document_and_a_prescription_go_through_the_call(
    browser: Browser, live_server: Any, tmp_path: Path
) -> None:
    watcher = PageErrors()
    doctor_context = await new_context(browser, live_server.url, DESKTOP, accept_downloads=True)
    patient_context = await new_context(browser, live_server.url, PHONE, accept_downloads=True)
    try:
        doctor = watcher.watch(await doctor_context.new_page(), "doctor")
        patient = watcher.watch(await patient_context.new_page(), "patient")
        await log_in(doctor, live_server.doctor_email, live_server.doctor_password)
        await doctor.get_by_test_id("new-patient-name").fill("Jeanne Dupont")
        await doctor.get_by_test_id("new-patient-email").fill("jeanne.dupont@example.org")
        await doctor.get_by_test_id("new-submit").click()
        link_box = doctor.get_by_test_id("patient-link")
        await expect(link_box).to_have_value(re.compile(r"^https?://.+/j/.+"), timeout=WAIT_MS)
        await patient.goto(await link_box.input_value())
        await patient.get_by_test_id("consent").check()
        await patient.get_by_test_id("join").click()
        await doctor.get_by_test_id("start-call").click()
        await doctor.get_by_test_id("admit").click()
        for page in (doctor, patient):
            await expect(page.get_by_test_id("call-status")).to_have_attribute("data-state", "connected")

        # The patient sends a lab result; a progress bar shows it going; the doctor sees it and downloads it.
        result = tmp_path / "bilan sanguin.pdf"
        result.write_bytes(b"%PDF-1.4\n" + os.urandom(3 * 1024 * 1024))
        await patient.get_by_test_id("upload").set_input_files(str(result))
        progress = patient.get_by_test_id("upload-progress")
        await expect(progress).to_be_visible()
        await expect(progress).to_have_attribute("data-state", "done")
        entry = doctor.get_by_test_id("documents").get_by_test_id("document").first
        await expect(entry).to_contain_text("bilan sanguin.pdf")
        async with doctor.expect_download() as downloading:
            await entry.get_by_test_id("document-download").click()
        download = await downloading.value
        assert Path(await download.path()).read_bytes() == result.read_bytes()
        await shot(patient, "document-sent-phone")

        # The doctor signs a prescription; the patient sees it and downloads the PDF.
        await doctor.get_by_test_id("rx-drug").fill("Paracétamol 1 g")
        await doctor.get_by_test_id("rx-dosage").fill("1 comprimé 3 fois par jour")
        await doctor.get_by_test_id("rx-duration").fill("5 jours")
        await doctor.get_by_test_id("rx-submit").click()
        prescription = patient.locator('[data-testid="document"][data-kind="prescription"]')
        await expect(prescription).to_have_count(1)
        async with patient.expect_download() as downloading:
            await prescription.get_by_test_id("document-download").click()
        pdf = Path(await (await downloading.value).path()).read_bytes()
        assert pdf.startswith(b"%PDF")
        await shot(doctor, "prescription-desktop")
        assert watcher.errors == []
    finally:
        await doctor_context.close()
        await patient_context.close()


async def test_the_dashboard_lists_a_consultations_documents_and_prescriptions(
    browser: Browser, live_server: Any, tmp_path: Path
) -> None:
    """After the call, the doctor finds its documents on the dashboard: listed with kind, size, who gave them and
    when (Paris time), downloaded byte for byte, the prescription's signed file too, and the prescription revoked."""
    from zoneinfo import ZoneInfo

    watcher = PageErrors()
    context = await new_context(browser, live_server.url, DESKTOP, accept_downloads=True)
    try:
        doctor = watcher.watch(await context.new_page(), "doctor")
        await log_in(doctor, live_server.doctor_email, live_server.doctor_password)
        await doctor.get_by_test_id("new-patient-name").fill("Jeanne Dupont")
        await doctor.get_by_test_id("new-patient-email").fill("jeanne.docs@example.org")
        await doctor.get_by_test_id("new-submit").click()
        row = doctor.get_by_test_id("consultation-row").first
        await expect(row).to_contain_text("Jeanne Dupont")
        await expect(row.get_by_test_id("consultation-documents-toggle")).to_have_count(0)  # none yet
        cid = await row.get_attribute("data-id")
        csrf = await doctor.locator('meta[name="csrf-token"]').get_attribute("content")
        assert cid and csrf
        # What the doctor gave during the call: a letter, and a signed prescription.
        letter = tmp_path / "courrier.pdf"
        letter.write_bytes(b"%PDF-1.4\n" + os.urandom(300_000))
        uploaded = await context.request.post(
            f"/api/consultations/{cid}/documents",
            multipart={"file": {"name": letter.name, "mimeType": "application/pdf", "buffer": letter.read_bytes()}},
            headers={"X-CSRF-Token": csrf},
        )
        assert uploaded.status == 201, await uploaded.text()
        created_at = datetime.fromisoformat((await uploaded.json())["created_at"].replace("Z", "+00:00"))
        items = [{"drug": "Paracétamol 1 g", "dosage": "1 comprimé 3 fois par jour", "duration": "5 jours"}]
        issued = await context.request.post(
            f"/api/consultations/{cid}/prescriptions", data={"items": items}, headers={"X-CSRF-Token": csrf}
        )
        assert issued.status == 201, await issued.text()
        number = (await issued.json())["prescription"]["number"]

        await doctor.reload()
        row = doctor.locator(f'[data-testid="consultation-row"][data-id="{cid}"]')
        toggle = row.get_by_test_id("consultation-documents-toggle")
        await expect(toggle).to_have_text("Documents (2)")
        await toggle.click()
        await expect(toggle).to_have_attribute("aria-expanded", "true")
        listing = row.get_by_test_id("consultation-documents")
        entries = listing.get_by_test_id("consultation-document")
        await expect(entries).to_have_count(2)
        document = listing.locator('[data-kind="document"]')
        await expect(document).to_contain_text("courrier.pdf")
        await expect(document).to_contain_text("envoyé par Dr Alice Martin (Médecin)")
        await expect(document).to_contain_text(created_at.astimezone(ZoneInfo("Europe/Paris")).strftime("%H:%M"))
        await expect(document).to_contain_text("ko")
        prescription = listing.locator('[data-kind="prescription"]')
        await expect(prescription).to_contain_text(f"Ordonnance {number}")
        await shot(doctor, "dashboard-documents")

        async with doctor.expect_download() as downloading:
            await document.get_by_test_id("consultation-document-download").click()
        download = await downloading.value
        assert download.suggested_filename == "courrier.pdf"
        assert Path(await download.path()).read_bytes() == letter.read_bytes()
        async with doctor.expect_download() as downloading:
            await prescription.get_by_test_id("consultation-document-signed").click()
        signed = Path(await (await downloading.value).path()).read_bytes()
        assert signed[:1] == b"\x30" and b"%PDF" in signed  # DER SignedData, the PDF inside

        await prescription.get_by_test_id("consultation-document-revoke").click()
        await prescription.get_by_test_id("consultation-document-revoke-confirm").click()
        await expect(prescription.get_by_test_id("consultation-document-revoked")).to_contain_text("Révoquée le")
        await expect(prescription.get_by_test_id("consultation-document-revoke")).to_have_count(0)
        await expect(row.get_by_test_id("consultation-documents-notice")).to_contain_text(f"{number} est révoquée")
        assert watcher.errors == []
    finally:
        await context.close()
