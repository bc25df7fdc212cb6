// The audit trail of a consultation, in its row of the dashboard: a button opens the list of what happened (when, in
// Paris time; who, by role; what, in words), loaded from GET /api/consultations/{id}/audit when opened and again
// when the row's data changes while it is open. The trail names no one (ids and codes only): the row says whose
// consultation it is. Each consultation has one section node, which its row takes back whenever the list rebuilds
// it, so what is open (and loaded) survives a refresh.
import { api, ApiError, errorText } from "../api.js";
import { el } from "../dom.js";
import { formatAmount, formatDateTime, has, t } from "../i18n.js";

/** What an entry did, in words; the code itself for an action this page has no words for yet. */
export function actionText(action) {
  const key = `dashboard.audit.action.${action}`;
  return has(key) ? t(key) : action;
}

function actorText(role) {
  const key = `dashboard.audit.actor.${role}`;
  return has(key) ? t(key) : role;
}

/** A few words from an entry's detail (a reason, a kind of mail, acts), or nothing. */
function detailText(item) {
  const d = item.detail || {};
  const parts = [];
  if (d.reason && has(`dashboard.audit.reason.${d.reason}`)) parts.push(t(`dashboard.audit.reason.${d.reason}`));
  if (d.kind && has(`dashboard.audit.mail.${d.kind}`)) parts.push(t(`dashboard.audit.mail.${d.kind}`));
  if (d.role && has(`role.${d.role}`)) parts.push(t(`role.${d.role}`));
  if (Array.isArray(d.acts) && d.acts.length) parts.push(d.acts.join(" + "));
  if (typeof d.total_cents === "number") parts.push(formatAmount(d.total_cents));
  if (d.consent === true) parts.push(t("dashboard.audit.consent"));
  return parts.join(" · ");
}

class Section {
  constructor(id, owner) {
    this.id = id;
    this.owner = owner;
    this.name = "";
    this.fingerprint = "";
    this.open = false;
    this.loading = false;
    this.items = null;
    this.error = null;
    this.node = el("div", { className: "consultation__audit", "data-testid": "consultation-audit-section" });
    this.node.addEventListener("click", (event) => {
      if (event.target.closest("[data-audit-action='toggle']")) this.toggle();
    });
  }

  /** The row's data changed (or was loaded again): a fresh trail if it is open. */
  update(c) {
    const fingerprint = JSON.stringify(c);
    const changed = fingerprint !== this.fingerprint;
    this.fingerprint = fingerprint;
    this.name = c.patient_name || "—";
    if (this.open && changed) this.load();
    else if (changed || !this.node.firstChild) this.render();
  }

  async load() {
    this.loading = true;
    this.error = null;
    this.render();
    try {
      const body = await api(`/api/consultations/${encodeURIComponent(this.id)}/audit`);
      this.items = (body && body.items) || [];
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return this.owner.onUnauthorized();
      this.error = `${t("dashboard.audit.load_error")} ${errorText(err)}`;
    } finally {
      this.loading = false;
    }
    this.render();
  }

  toggle() {
    this.open = !this.open;
    if (this.open) this.load();
    else this.render();
  }

  render() {
    const active = document.activeElement;
    const kept = active && this.node.contains(active) ? active.dataset.focusKey : null;
    const panelId = `${this.id}-audit`;
    const children = [el("button", {
      type: "button",
      className: "btn btn--ghost btn--small",
      "data-audit-action": "toggle",
      "data-testid": "consultation-audit-toggle",
      "data-focus-key": "audit-toggle",
      "aria-expanded": this.open ? "true" : "false",
      "aria-controls": panelId,
      "aria-label": t("dashboard.audit.toggle_label", { name: this.name }),
      text: t("dashboard.audit.toggle"),
    })];
    if (this.open) children.push(this.panel(panelId));
    this.node.replaceChildren(...children);
    if (kept) {
      const target = this.node.querySelector(`[data-focus-key="${CSS.escape(kept)}"]`);
      if (target && document.activeElement !== target) target.focus();
    }
  }

  panel(panelId) {
    const panel = el("div", { className: "audit-panel", id: panelId });
    if (this.loading && !this.items) {
      panel.append(el("p", { className: "muted", text: t("dashboard.audit.loading") }));
      return panel;
    }
    if (this.error) panel.append(el("p", { className: "alert alert--error", role: "alert", text: this.error }));
    const items = this.items || [];
    if (!items.length) {
      if (!this.error) panel.append(el("p", { className: "muted", text: t("dashboard.audit.empty") }));
      return panel;
    }
    const list = el("ol", {
      className: "audit-list",
      "data-testid": "consultation-audit",
      "aria-label": t("dashboard.audit.list_label", { name: this.name }),
    });
    for (const item of items) {
      const detail = detailText(item);
      list.append(el("li", {
        className: "audit-list__item",
        "data-testid": "consultation-audit-entry",
        "data-audit": item.action,
        "data-seq": String(item.seq),
      },
      el("time", { className: "audit-list__when", datetime: item.at, text: formatDateTime(item.at) }),
      el("span", { className: "audit-list__what", text: actionText(item.action) }),
      el("span", {
        className: "audit-list__meta",
        text: [actorText(item.actor_role), detail].filter(Boolean).join(" · "),
      })));
    }
    panel.append(list);
    panel.append(el("p", { className: "hint", text: t("dashboard.audit.hint") }));
    return panel;
  }
}

export class ConsultationTrail {
  /** @param {{onUnauthorized: () => void}} o */
  constructor({ onUnauthorized }) {
    this.onUnauthorized = onUnauthorized;
    this.sections = new Map(); // consultation id -> Section
  }

  /** The audit part of a consultation's row: the same node each time the row is built. */
  section(c) {
    let section = this.sections.get(c.id);
    if (!section) {
      section = new Section(c.id, this);
      this.sections.set(c.id, section);
    }
    section.update(c);
    return section.node;
  }
}
