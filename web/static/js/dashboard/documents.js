// The documents of a consultation, in its row of the dashboard: a button opens the list (name, kind, size, who gave
// it, when, in Paris time), each with its download link; a prescription also has its signed file (.p7m) and, until
// it is revoked, a revoke button (confirmed in the row). The list is loaded when opened, and again when the row's
// document count changes. Each consultation has one section node, which its row takes back whenever the list
// rebuilds it, so what is open (and loaded) survives a refresh.
import { api, ApiError, errorText } from "../api.js";
import { el } from "../dom.js";
import { formatDateTime, locale, t } from "../i18n.js";

const KB = new Intl.NumberFormat(locale, { style: "unit", unit: "kilobyte", maximumFractionDigits: 0 });
const MB = new Intl.NumberFormat(locale, { style: "unit", unit: "megabyte", maximumFractionDigits: 1 });

function sizeText(bytes) {
  if (bytes < 1000 * 1000) return KB.format(Math.max(1, Math.round(bytes / 1000)));
  return MB.format(bytes / 1000 / 1000);
}

function uploaderText(uploader) {
  if (!uploader) return "";
  const role = t(`role.${uploader.role}`);
  return t("dashboard.documents.by", { name: uploader.name ? `${uploader.name} (${role})` : role });
}

class Section {
  constructor(id, owner) {
    this.id = id;
    this.owner = owner;
    this.count = 0;
    this.name = "";
    this.open = false;
    this.loading = false;
    this.items = null; // the last list loaded
    this.loadedCount = -1; // the document count it was loaded for
    this.error = null;
    this.confirming = null; // the document id whose revocation is being confirmed
    this.busy = null; // the document id being revoked
    this.notice = "";
    this.node = el("div", { className: "consultation__documents", "data-testid": "consultation-documents-section" });
    this.node.addEventListener("click", (event) => this.click(event));
    this.node.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.confirming && !this.busy) this.dismiss();
    });
  }

  /** The row's data changed (or was loaded again): the count on the button, and a fresh list if it moved. */
  update(c) {
    const count = Number(c.documents_count) || 0;
    const changed = count !== this.count || c.patient_name !== this.name;
    this.count = count;
    this.name = c.patient_name || "—";
    if (this.open && count !== this.loadedCount) this.load();
    else if (changed || !this.node.firstChild) this.render();
  }

  async load() {
    this.loading = true;
    this.error = null;
    this.render();
    const wanted = this.count;
    try {
      const body = await api(`/api/consultations/${encodeURIComponent(this.id)}/documents`);
      this.items = (body && body.items) || [];
      this.loadedCount = wanted;
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return this.owner.onUnauthorized();
      this.error = `${t("dashboard.documents.load_error")} ${errorText(err)}`;
    } finally {
      this.loading = false;
    }
    this.render();
  }

  toggle() {
    this.open = !this.open;
    this.notice = "";
    this.confirming = null;
    if (this.open && this.loadedCount !== this.count) this.load();
    else this.render();
  }

  dismiss() {
    const id = this.confirming;
    this.confirming = null;
    this.render(`revoke:${id}`);
  }

  async revoke(documentId) {
    const item = (this.items || []).find((d) => d.id === documentId);
    const number = item && item.prescription ? item.prescription.number : "";
    this.busy = documentId;
    this.render(`revoke-confirm:${documentId}`);
    try {
      const revoked = await api(`/api/documents/${encodeURIComponent(documentId)}/revoke`, { method: "POST" });
      if (item) item.prescription = { ...item.prescription, ...revoked };
      this.notice = t("dashboard.documents.revoked_done", { number });
      this.confirming = null;
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return this.owner.onUnauthorized();
      this.notice = `${t("dashboard.documents.revoke_error")} ${errorText(err)}`;
    } finally {
      this.busy = null;
    }
    this.render(`document:${documentId}`);
  }

  click(event) {
    const button = event.target.closest("[data-doc-action]");
    if (!button || button.disabled) return;
    const documentId = button.dataset.document;
    const actions = {
      toggle: () => this.toggle(),
      revoke: () => {
        this.confirming = documentId;
        this.notice = "";
        this.render(`revoke-confirm:${documentId}`);
      },
      "revoke-confirm": () => this.revoke(documentId),
      "revoke-dismiss": () => this.dismiss(),
    };
    const action = actions[button.dataset.docAction];
    if (action) action();
  }

  /** Rebuild the section's content; focus goes to `focusKey` if given, or back where it was. */
  render(focusKey = null) {
    const active = document.activeElement;
    const kept = active && this.node.contains(active) ? active.dataset.focusKey : null;
    const panelId = `${this.id}-documents`;
    const children = [];
    if (this.count > 0 || this.open) {
      children.push(el("button", {
        type: "button",
        className: "btn btn--ghost btn--small",
        "data-doc-action": "toggle",
        "data-testid": "consultation-documents-toggle",
        "data-focus-key": "documents-toggle",
        "aria-expanded": this.open ? "true" : "false",
        "aria-controls": panelId,
        "aria-label": t("dashboard.documents.toggle_label", { name: this.name, count: this.count }),
        text: t("dashboard.documents.toggle", { count: this.count }),
      }));
    }
    if (this.open) children.push(this.panel(panelId));
    this.node.replaceChildren(...children);
    const key = focusKey || kept;
    if (key) {
      const target = this.node.querySelector(`[data-focus-key="${CSS.escape(key)}"]`);
      if (target && document.activeElement !== target) target.focus();
    }
  }

  panel(panelId) {
    const panel = el("div", { className: "documents-panel", id: panelId });
    if (this.loading && !this.items) {
      panel.append(el("p", { className: "muted", text: t("dashboard.documents.loading") }));
      return panel;
    }
    if (this.error) panel.append(el("p", { className: "alert alert--error", role: "alert", text: this.error }));
    const items = this.items || [];
    if (!items.length && !this.error) panel.append(el("p", { className: "muted", text: t("dashboard.documents.empty") }));
    if (!items.length) return panel;
    const list = el("ul", {
      className: "documents-list",
      "data-testid": "consultation-documents",
      "aria-label": t("dashboard.documents.list_label", { name: this.name }),
    });
    for (const d of items) list.append(this.item(d));
    panel.append(list);
    panel.append(el("p", { className: "hint", role: "status", "data-testid": "consultation-documents-notice", text: this.notice }));
    return panel;
  }

  item(d) {
    const href = `/api/documents/${encodeURIComponent(d.id)}`;
    const rx = d.kind === "prescription" ? d.prescription : null;
    const kind = rx ? t("dashboard.documents.kind.prescription", { number: rx.number }) : t("dashboard.documents.kind.document");
    const meta = [kind, sizeText(d.size), uploaderText(d.uploader), formatDateTime(d.created_at)].filter(Boolean);
    const line = el("li", {
      className: "documents-list__item",
      "data-testid": "consultation-document",
      "data-document": d.id, // not data-id: that names the row's consultation
      "data-kind": d.kind,
      "data-revoked": rx && rx.revoked_at ? "true" : null,
      "data-focus-key": `document:${d.id}`,
      tabindex: "-1",
    },
    el("a", {
      href,
      download: d.name,
      className: "documents-list__name",
      "data-testid": "consultation-document-download",
      "aria-label": t("dashboard.documents.download", { name: d.name }),
      text: d.name,
    }),
    el("span", { className: "documents-list__meta", text: meta.join(" · ") }));
    if (!rx) return line;

    const actions = el("span", { className: "documents-list__actions" });
    actions.append(el("a", {
      href: `${href}/signed`,
      "data-testid": "consultation-document-signed",
      "aria-label": t("dashboard.documents.signed_label", { number: rx.number }),
      text: t("dashboard.documents.signed"),
    }));
    if (rx.revoked_at) {
      actions.append(el("span", {
        className: "status status--cancelled",
        "data-testid": "consultation-document-revoked",
        text: t("dashboard.documents.revoked", { when: formatDateTime(rx.revoked_at) }),
      }));
    } else if (this.confirming !== d.id) {
      actions.append(el("button", {
        type: "button",
        className: "btn btn--quiet-danger btn--compact",
        "data-doc-action": "revoke",
        "data-document": d.id,
        "data-testid": "consultation-document-revoke",
        "data-focus-key": `revoke:${d.id}`,
        "aria-label": t("dashboard.documents.revoke_label", { number: rx.number }),
        text: t("dashboard.documents.revoke"),
      }));
    }
    line.append(actions);
    if (this.confirming === d.id && !rx.revoked_at) line.append(this.confirmation(d, rx));
    return line;
  }

  confirmation(d, rx) {
    const busy = this.busy === d.id;
    const textId = `${d.id}-revoke-text`;
    return el("div", { className: "documents-list__confirm", role: "group", "aria-labelledby": textId },
      el("p", { id: textId, text: t("dashboard.documents.revoke_question", { number: rx.number }) }),
      el("button", {
        type: "button",
        className: "btn btn--danger btn--small",
        "data-doc-action": "revoke-confirm",
        "data-document": d.id,
        "data-testid": "consultation-document-revoke-confirm",
        "data-focus-key": `revoke-confirm:${d.id}`,
        "aria-busy": busy ? "true" : null,
        disabled: busy,
        text: t(busy ? "dashboard.documents.revoking" : "dashboard.documents.revoke_confirm"),
      }),
      el("button", {
        type: "button",
        className: "btn btn--secondary btn--small",
        "data-doc-action": "revoke-dismiss",
        "data-document": d.id,
        "data-focus-key": `revoke-dismiss:${d.id}`,
        disabled: busy,
        text: t("dashboard.documents.revoke_dismiss"),
      }));
  }
}

export class ConsultationDocuments {
  /** @param {{onUnauthorized: () => void}} o */
  constructor({ onUnauthorized }) {
    this.onUnauthorized = onUnauthorized;
    this.sections = new Map(); // consultation id -> Section
  }

  /** The documents part of a consultation's row: the same node each time the row is built. */
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
