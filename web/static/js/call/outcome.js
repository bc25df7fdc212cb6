// The end of a call: the outcome card (left, denied, ended...), the rejoin button, and for the doctor the billing
// record once the consultation has ended. Owns #outcome, #billing and #rejoin.
import { api } from "../api.js";
import { el } from "../dom.js";
import { formatAmount, formatDuration, t } from "../i18n.js";

const BILLING_TRIES = 3;

export class Outcome {
  constructor() {
    this.card = document.getElementById("outcome");
    this.title = document.getElementById("outcome-title");
    this.text = document.getElementById("outcome-text");
    this.billing = document.getElementById("billing");
    this.rejoin = document.getElementById("rejoin");
  }

  show(title, text, { rejoin = false } = {}) {
    this.title.textContent = title;
    this.text.textContent = text || "";
    this.text.hidden = !text;
    this.rejoin.hidden = !rejoin;
    this.billing.hidden = true;
    this.card.hidden = false;
    this.card.focus();
  }

  hide() {
    this.card.hidden = true;
  }

  /** The consultation's billing record, asked for a few times (the end may still be being written). */
  async showBilling(consultationId) {
    for (let attempt = 0; attempt < BILLING_TRIES; attempt += 1) {
      try {
        const consultation = await api(`/api/consultations/${encodeURIComponent(consultationId)}`);
        if (consultation && consultation.billing) {
          this.renderBilling(consultation.billing);
          return;
        }
      } catch (error) {
        console.warn("billing:", error);
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    this.text.textContent = t("ended.billing_unavailable");
    this.text.hidden = false;
  }

  renderBilling(billing) {
    document.getElementById("billing-acts").replaceChildren(
      ...(billing.acts || []).map((act) =>
        el(
          "li",
          { "data-testid": "billing-act" },
          el("span", { className: "billing__code", text: act.act_code }),
          el("span", { className: "billing__role", text: t(`role.${act.role}`) }),
          el("span", { className: "billing__amount", text: formatAmount(act.amount_cents, billing.currency) }),
        ),
      ),
    );
    document.getElementById("billing-duration").textContent = t("ended.duration", {
      duration: formatDuration(billing.duration_s),
    });
    document.getElementById("billing-total").textContent = t("ended.total", {
      amount: formatAmount(billing.total_cents, billing.currency),
    });
    this.billing.hidden = false;
  }
}

/** The doctor's "end for everyone", confirmed in a dialog (or at once where <dialog> is missing); `prepare` fills
 * the dialog (the billing proposal) before it opens. */
export function confirmEnd(onConfirm, prepare = async () => {}) {
  const button = document.getElementById("end");
  const dialog = document.getElementById("end-dialog");
  if (!button) return;
  button.addEventListener("click", async () => {
    if (dialog && typeof dialog.showModal === "function") {
      await prepare();
      dialog.returnValue = "";
      dialog.showModal();
    } else {
      onConfirm(); // no <dialog> support: the button itself is the confirmation
    }
  });
  if (dialog) {
    dialog.addEventListener("close", () => {
      if (dialog.returnValue === "end") onConfirm();
    });
  }
}
