// The doctor's prescription form: lines of medicine, dosage and duration, notes; signed and sent in one step.
// Owns #prescription-form (absent from a patient's page).
import { api, errorText } from "../api.js";
import { t } from "../i18n.js";

export class PrescriptionForm {
  /** @param {{consultationId: () => string|null, onIssued: (document: object) => void, notify: (text: string) => void}} o */
  constructor({ consultationId, onIssued, notify }) {
    this.form = document.getElementById("prescription-form");
    this.consultationId = consultationId;
    this.onIssued = onIssued;
    this.notify = notify;
    if (!this.form) return;
    this.items = document.getElementById("prescription-items");
    this.error = document.getElementById("prescription-error");
    this.submitButton = this.form.querySelector('[type="submit"]');
    document.getElementById("prescription-add").addEventListener("click", () => this.addLine());
    this.form.addEventListener("submit", (event) => this.submit(event));
  }

  addLine() {
    const line = this.items.querySelector('[data-testid="prescription-item"]').cloneNode(true);
    for (const input of line.querySelectorAll("input")) input.value = "";
    this.items.append(line);
    line.querySelector("input").focus();
  }

  lines() {
    return [...this.items.querySelectorAll('[data-testid="prescription-item"]')]
      .map((line) => ({
        drug: line.querySelector('[name="drug"]').value.trim(),
        dosage: line.querySelector('[name="dosage"]').value.trim(),
        duration: line.querySelector('[name="duration"]').value.trim(),
      }))
      .filter((item) => item.drug || item.dosage || item.duration);
  }

  async submit(event) {
    event.preventDefault();
    this.error.hidden = true;
    const items = this.lines();
    if (!items.length || items.some((item) => !item.drug || !item.dosage || !item.duration)) {
      this.error.textContent = t("prescription.incomplete");
      this.error.hidden = false;
      return;
    }
    const notes = this.form.elements.notes.value.trim();
    this.submitButton.disabled = true;
    try {
      const path = `/api/consultations/${encodeURIComponent(this.consultationId())}/prescriptions`;
      const issued = await api(path, { method: "POST", body: notes ? { items, notes } : { items } });
      this.notify(t("prescription.sent", { number: issued.prescription.number }));
      this.onIssued(issued);
      this.form.reset();
      const lines = this.items.querySelectorAll('[data-testid="prescription-item"]');
      for (const extra of [...lines].slice(1)) extra.remove();
    } catch (error) {
      this.error.textContent = errorText(error);
      this.error.hidden = false;
    } finally {
      this.submitButton.disabled = false;
    }
  }
}
