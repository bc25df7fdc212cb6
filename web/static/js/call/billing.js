// The billing part of the doctor's end dialog: the proposed acts and amounts for the consultation's day, and the
// doctor's choice (another act of their profession, majorations, where the nurse was, not billable with a reason).
// The server decides what may be billed; this only shows its proposal and sends the choice back.

import { api } from "../api.js";
import { formatAmount, t } from "../i18n.js";
import { el } from "../dom.js";

export class EndBilling {
  constructor(consultationId) {
    this.consultationId = consultationId;
    this.box = document.getElementById("end-billing");
    this.status = document.getElementById("billing-status");
    this.act = document.getElementById("billing-act");
    this.actField = document.getElementById("billing-act-field");
    this.majorations = document.getElementById("billing-majorations");
    this.nurseField = document.getElementById("billing-nurse-field");
    this.nursePlace = document.getElementById("billing-nurse-place");
    this.reasonField = document.getElementById("billing-reason-field");
    this.reason = document.getElementById("billing-reason");
    this.total = document.getElementById("billing-proposed");
    this.birthDate = document.getElementById("billing-birth-date");
    this.nir = document.getElementById("billing-nir");
    this.proposal = null;
    for (const control of [this.status, this.act, this.nursePlace, this.majorations]) {
      if (control) control.addEventListener("change", () => this.update());
    }
  }

  /** Ask the server what ending now would bill; the dialog still works (without choices) if that fails. */
  async load() {
    if (!this.box) return;
    try {
      this.proposal = await api(`/api/consultations/${encodeURIComponent(this.consultationId)}/billing/proposal`);
    } catch {
      this.proposal = null;
      this.box.hidden = true;
      return;
    }
    this.render();
    this.box.hidden = false;
  }

  render() {
    const { proposed, statuses, doctor_acts: acts, majorations, nurse_acts: nurseActs } = this.proposal;
    fill(this.status, statuses.map((status) => [status, t(`billing.status.${status}`)]), proposed.status);
    const doctorAct = proposed.acts.find((a) => a.role === "doctor");
    fill(this.act, acts.map((a) => [a.code, `${a.code} · ${a.label} · ${formatAmount(a.amount_cents)}`]), doctorAct ? doctorAct.act_code : "");
    this.majorations.replaceChildren(
      ...majorations.map((m) =>
        el("label", { className: "check" },
          el("input", { type: "checkbox", value: m.code, "data-testid": `majoration-${m.code}` }),
          ` ${m.code} · ${m.label} · +${formatAmount(m.amount_cents)}`),
      ),
    );
    const nurse = proposed.nurse;
    fill(this.nursePlace, nurseActs.map((a) => [a.place, `${a.code} · ${t(`billing.place.${a.place}`)} · ${formatAmount(a.amount_cents)}`]), nurse ? nurse.place : "");
    this.update();
  }

  /** Show the fields that matter for the chosen status, and the total the choice would bill. */
  update() {
    if (!this.proposal) return;
    const status = this.status.value;
    const billed = status === "completed";
    this.actField.hidden = !billed;
    this.majorations.hidden = !billed || this.majorations.children.length === 0;
    this.nurseField.hidden = !billed || this.proposal.nurse_acts.length === 0;
    this.reasonField.hidden = status !== "not_billable";
    if (!billed) {
      this.total.textContent = t("billing.nothing", { reason: t(`billing.status.${status}`) });
      return;
    }
    const act = this.proposal.doctor_acts.find((a) => a.code === this.act.value);
    let cents = act ? act.amount_cents : 0;
    for (const box of this.majorations.querySelectorAll("input:checked")) {
      const found = this.proposal.majorations.find((m) => m.code === box.value);
      if (found) cents += found.amount_cents;
    }
    const nurseAct = this.proposal.nurse_acts.find((a) => a.place === this.nursePlace.value);
    if (nurseAct) cents += nurseAct.amount_cents;
    this.total.textContent = t("billing.total", { amount: formatAmount(cents) });
  }

  /** The body of POST /end: nothing when the proposal could not be read (the server's own proposal stands). */
  choice() {
    if (!this.proposal) return undefined;
    const status = this.status.value;
    const body = { status };
    if (status === "completed") {
      body.doctor_act = this.act.value;
      body.majorations = [...this.majorations.querySelectorAll("input:checked")].map((box) => box.value);
      if (this.proposal.nurse_acts.length) body.nurse_place = this.nursePlace.value;
    }
    if (status === "not_billable") body.reason = this.reason.value.trim();
    if (this.birthDate && this.birthDate.value) body.patient_birth_date = this.birthDate.value;
    if (this.nir && this.nir.value.trim()) body.patient_nir = this.nir.value.trim();
    return status === "no_show" ? undefined : body;
  }
}

function fill(select, options, selected) {
  if (!select) return;
  select.replaceChildren(...options.map(([value, label]) => el("option", { value, text: label })));
  if (selected) select.value = selected;
}
