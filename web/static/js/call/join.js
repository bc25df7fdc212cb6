// The patient's or nurse's consent form, before the call: consent, then POST /api/join with the link's token.
// Owns #prejoin, #join-form, #consent and #join-error (absent from the doctor's page).
import { api, errorText } from "../api.js";
import { t } from "../i18n.js";

export class JoinForm {
  /**
   * @param {object} o
   * @param {string} o.token  the link's token (the page's)
   * @param {string} o.doctorName
   * @param {(grant: object) => Promise<void>} o.onGrant  what /api/join answered
   */
  constructor({ token, doctorName, onGrant }) {
    this.section = document.getElementById("prejoin");
    this.form = document.getElementById("join-form");
    this.consent = document.getElementById("consent");
    this.error = document.getElementById("join-error");
    this.token = token;
    this.onGrant = onGrant;
    if (!this.form) return;
    this.button = this.form.querySelector('[type="submit"]');
    this.label = this.button.textContent;
    this.form.addEventListener("submit", (event) => this.submit(event));
    this.consent.addEventListener("change", () => {
      if (this.consent.checked) this.error.hidden = true;
    });
    if (doctorName) document.title = `${t("call.title_patient", { name: doctorName })} — ${t("app.name")}`;
  }

  get present() {
    return Boolean(this.form);
  }

  hide() {
    if (this.section) this.section.hidden = true;
  }

  show() {
    this.section.hidden = false;
    this.setBusy(false);
  }

  setBusy(busy) {
    this.button.disabled = busy;
    this.button.textContent = busy ? this.button.dataset.busyLabel || this.label : this.label;
  }

  showError(text) {
    this.error.textContent = text;
    this.error.hidden = false;
  }

  async submit(event) {
    event.preventDefault();
    this.error.hidden = true;
    if (!this.consent.checked) {
      this.showError(t("error.consent_required"));
      this.consent.focus();
      return;
    }
    this.setBusy(true);
    let grant;
    try {
      const body = { token: this.token, consent: true };
      grant = await api("/api/join", { method: "POST", body, csrf: false });
    } catch (error) {
      this.showError(errorText(error));
      this.setBusy(false);
      return;
    }
    this.hide();
    await this.onGrant(grant);
  }
}
