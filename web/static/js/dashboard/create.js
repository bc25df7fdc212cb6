// Creating a consultation: the form, and the box that shows the links just made (to copy) and the addresses the
// invitations go to. Owns #new-form, #new-error and #created.
import { api, ApiError, errorText } from "../api.js";
import { parisLocalToIso, t } from "../i18n.js";
import { copyFrom } from "./copy.js";

const $ = (id) => document.getElementById(id);

export class NewConsultation {
  /**
   * @param {object} o
   * @param {() => void} o.onCreated  the list should show it
   * @param {() => void} o.onUnauthorized
   */
  constructor({ onCreated, onUnauthorized }) {
    this.form = $("new-form");
    this.submitButton = this.form.querySelector('[type="submit"]');
    this.submitLabel = this.submitButton.textContent;
    this.error = $("new-error");
    this.box = $("created");
    this.onCreated = onCreated;
    this.onUnauthorized = onUnauthorized;
    this.createdId = null;
    this.emails = { patient: "", nurse: "" }; // the addresses the creation box says it mails to
  }

  start() {
    this.form.addEventListener("submit", (event) => this.submit(event));
    this.box.addEventListener("click", async (event) => {
      const button = event.target.closest("[data-copy]");
      if (!button) return;
      const ok = await copyFrom($(button.dataset.copy));
      $("copy-status").textContent = ok ? t("dashboard.copied") : t("dashboard.copy_failed");
    });
    for (const id of ["patient-link", "nurse-link"]) $(id).addEventListener("focus", (e) => e.target.select());
  }

  body() {
    const value = (name) => this.form.elements[name].value.trim();
    const body = {
      patient_name: value("patient_name"),
      patient_email: value("patient_email"),
      language: value("language"),
    };
    const scheduled = parisLocalToIso(this.form.elements.scheduled_at.value);
    if (scheduled) body.scheduled_at = scheduled;
    if (value("nurse_name")) body.nurse_name = value("nurse_name");
    if (value("nurse_email")) body.nurse_email = value("nurse_email");
    return body;
  }

  showError(text) {
    this.error.textContent = text;
    this.error.hidden = false;
  }

  async submit(event) {
    event.preventDefault();
    this.error.hidden = true;
    const body = this.body();
    if (body.nurse_email && !body.nurse_name) {
      this.showError(t("dashboard.new.nurse_name_required"));
      this.form.elements.nurse_name.focus();
      return;
    }
    this.submitButton.disabled = true;
    this.submitButton.textContent = this.submitButton.dataset.busyLabel || this.submitLabel;
    try {
      const consultation = await api("/api/consultations", { method: "POST", body });
      this.show(consultation, body);
      this.form.reset();
      this.onCreated();
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return this.onUnauthorized();
      this.showError(errorText(err));
    } finally {
      this.submitButton.disabled = false;
      this.submitButton.textContent = this.submitLabel;
    }
  }

  show(consultation, body) {
    this.createdId = consultation.id;
    $("patient-link").value = consultation.patient_link || "";
    $("nurse-link-field").hidden = !consultation.nurse_link;
    $("nurse-link").value = consultation.nurse_link || "";
    this.emails = { patient: body.patient_email, nurse: consultation.nurse_link ? body.nurse_email || "" : "" };
    this.showSending();
    $("start-call").href = `/c/${encodeURIComponent(consultation.id)}`;
    $("copy-status").textContent = "";
    this.box.hidden = false;
    this.box.focus();
  }

  showSending() {
    const { patient, nurse } = this.emails;
    $("created-sending").textContent = nurse
      ? t("dashboard.created.sending_nurse", { email: patient, nurse_email: nurse })
      : t("dashboard.created.sending", { email: patient });
  }

  /** A link was sent again for the consultation this box shows: the box shows the new one (and the new address). */
  linkResent(id, role, link, correctedEmail) {
    if (id !== this.createdId || (role !== "patient" && role !== "nurse")) return;
    $(`${role}-link`).value = link;
    if (correctedEmail) {
      this.emails = { ...this.emails, [role]: correctedEmail };
      this.showSending();
    }
  }

  cancelled(id) {
    if (id === this.createdId) this.box.hidden = true;
  }
}
