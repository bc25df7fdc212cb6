// The month's billing on the dashboard: consultations by status, the acts and their total for the month the doctor
// picks, and the exports of that month (CSV for the accountant, FHIR for software).

import { api, ApiError } from "../api.js";
import { el } from "../dom.js";
import { formatAmount, t, TIME_ZONE } from "../i18n.js";

const STATUSES = ["completed", "no_show", "interrupted", "not_billable", "cancelled"];

export class MonthBilling {
  constructor({ onUnauthorized }) {
    this.onUnauthorized = onUnauthorized;
    this.month = document.getElementById("billing-month");
    this.summary = document.getElementById("billing-summary");
    this.csv = document.getElementById("billing-export");
    this.fhir = document.getElementById("billing-export-fhir");
  }

  start() {
    if (!this.month) return;
    this.month.value = thisMonth();
    this.month.addEventListener("change", () => this.refresh());
    this.refresh();
  }

  async refresh() {
    const month = this.month.value;
    if (!/^\d{4}-\d{2}$/.test(month)) return;
    const [year, number] = month.split("-").map(Number);
    const last = new Date(Date.UTC(year, number, 0)).getUTCDate();
    const range = `from=${month}-01&to=${month}-${String(last).padStart(2, "0")}`;
    this.csv.href = `/api/billing/export?${range}&format=csv`;
    this.fhir.href = `/api/billing/export?${range}&format=fhir`;
    let found;
    try {
      found = await api(`/api/billing/summary?month=${month}`);
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return this.onUnauthorized();
      this.summary.replaceChildren(el("p", { className: "error", text: t("dashboard.billing.unavailable") }));
      return;
    }
    this.render(found);
  }

  render(found) {
    const statuses = el(
      "ul",
      { className: "billing-month__statuses", "data-testid": "billing-statuses" },
      ...STATUSES.map((status) =>
        el("li", { "data-status": status }, `${t(`dashboard.billing.status.${status}`)} : ${found.statuses[status] || 0}`),
      ),
    );
    const acts = el(
      "ul",
      { className: "billing-month__acts", "data-testid": "billing-acts" },
      ...found.acts.map((act) =>
        el("li", { "data-code": act.code }, `${act.code} × ${act.count} · ${formatAmount(act.total_cents, found.currency)}`),
      ),
    );
    const total = el("p", {
      className: "billing-month__total",
      "data-testid": "billing-total",
      text: t("dashboard.billing.total", { amount: formatAmount(found.total_cents, found.currency) }),
    });
    this.summary.replaceChildren(statuses, acts, total);
  }
}

/** This month in Paris, as YYYY-MM. */
function thisMonth() {
  const parts = new Intl.DateTimeFormat("en-CA", { timeZone: TIME_ZONE, year: "numeric", month: "2-digit" }).format(new Date());
  return parts.slice(0, 7);
}
