// The list of the doctor's consultations: loaded by pages, refreshed (one load at a time), polled while a mail is
// queued, and rendered row by row, rebuilding only the rows whose data or state changed and keeping focus.
// Owns #consultations and its loading, empty, error, status and "more" elements.
import { api, ApiError, errorText } from "../api.js";
import { t } from "../i18n.js";
import { row } from "./row.js";
import { RowStates } from "./state.js";

const REFRESH_MS = 20000;
const MAIL_POLL_MS = 5000;

export class ConsultationList {
  /**
   * @param {{onUnauthorized: () => void, documents?: import("./documents.js").ConsultationDocuments}} o
   *   `documents` gives each row its documents section; `trail` (a ConsultationTrail of ./audit.js) its audit trail.
   */
  constructor({ onUnauthorized, documents = null, trail = null }) {
    this.documents = documents;
    this.trail = trail;
    this.list = document.getElementById("consultations");
    this.error = document.getElementById("list-error");
    this.empty = document.getElementById("list-empty");
    this.loading = document.getElementById("list-loading");
    this.status = document.getElementById("list-status");
    this.more = document.getElementById("list-more");
    this.onUnauthorized = onUnauthorized;
    this.ui = new RowStates();
    this.items = [];
    this.nextCursor = null;
    this.rendered = new Map(); // id -> {key, node}
    this.pollTimer = null;
    this.refreshing = null;
    this.refreshAgain = false;
  }

  start() {
    document.getElementById("list-refresh").addEventListener("click", () => this.refresh());
    this.more.addEventListener("click", () => this.load({ append: true }));
    setInterval(() => {
      if (document.visibilityState === "visible") this.refresh();
    }, REFRESH_MS);
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.refresh();
    });
    this.refresh();
  }

  find(id) {
    return this.items.find((x) => x.id === id) || null;
  }

  /** A consultation as an action returned it, until the next load. */
  update(updated) {
    this.items = this.items.map((x) => (x.id === updated.id ? { ...x, ...updated } : x));
  }

  announce(text) {
    this.status.textContent = text;
  }

  /** Bring the list in line with the items, rebuilding only the rows whose data or page state changed. */
  render() {
    const { list, ui } = this;
    const active = document.activeElement;
    let kept = null;
    if (active && list.contains(active) && active.dataset.focusKey) {
      kept = { id: active.closest("[data-id]").dataset.id, key: active.dataset.focusKey };
    }
    const wanted = ui.pendingFocus;
    ui.pendingFocus = null;

    const seen = new Set();
    let index = 0;
    for (const c of this.items) {
      if (seen.has(c.id)) continue;
      seen.add(c.id);
      const key = JSON.stringify(c) + ui.key(c.id);
      let entry = this.rendered.get(c.id);
      if (!entry || entry.key !== key) {
        const node = row(c, ui, this.documents, this.trail);
        if (entry && entry.node.parentNode === list) list.replaceChild(node, entry.node);
        entry = { key, node };
        this.rendered.set(c.id, entry);
      }
      const current = list.children[index];
      if (current !== entry.node) list.insertBefore(entry.node, current || null);
      index += 1;
    }
    while (list.children.length > index) list.lastElementChild.remove();
    for (const id of [...this.rendered.keys()]) if (!seen.has(id)) this.rendered.delete(id);
    // A form whose row no longer shows it (the consultation closed, the line went) is dropped with its state.
    for (const [id, entry] of [...ui.fixForms]) {
      if (!entry.form.isConnected) {
        ui.fixForms.delete(id);
        ui.fixing.delete(id);
      }
    }
    this.restoreFocus(wanted || kept, Boolean(wanted));
  }

  /** Focus where an action asked for it, or back where it was when a refresh rebuilt that row. */
  restoreFocus(target, asked) {
    if (!target) return;
    const focusLost = !document.activeElement || document.activeElement === document.body;
    if (!asked && !focusLost) return;
    const rowNode = [...this.list.children].find((node) => node.dataset.id === target.id);
    if (!rowNode) return;
    let node = target.key === "row" ? rowNode : rowNode.querySelector(`[data-focus-key="${CSS.escape(target.key)}"]`);
    if (!node || node.disabled) node = rowNode;
    if (document.activeElement !== node) node.focus({ preventScroll: !asked });
  }

  hasQueuedMail() {
    const queued = (mail) => Boolean(mail && mail.status === "queued");
    return this.items.some((c) => (c.invitations || []).some((i) => queued(i.mail) || queued(i.cancellation)));
  }

  schedulePoll() {
    clearTimeout(this.pollTimer);
    this.pollTimer = null;
    if (!this.hasQueuedMail()) return;
    this.pollTimer = setTimeout(() => {
      this.pollTimer = null;
      if (document.visibilityState === "visible") this.refresh();
    }, MAIL_POLL_MS);
  }

  async load({ append = false } = {}) {
    const limit = append ? 20 : Math.max(20, this.items.length);
    const query = new URLSearchParams({ limit: String(limit) });
    if (append && this.nextCursor) query.set("before", this.nextCursor);
    try {
      const page = await api(`/api/consultations?${query}`);
      const got = (page && page.items) || [];
      if (append) {
        const known = new Set(this.items.map((c) => c.id));
        this.items = this.items.concat(got.filter((c) => !known.has(c.id)));
      } else {
        this.items = got;
      }
      this.nextCursor = page ? page.next : null;
      this.render();
      this.more.hidden = !this.nextCursor;
      this.empty.hidden = this.items.length > 0;
      this.error.hidden = true;
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return this.onUnauthorized();
      this.error.textContent = `${t("dashboard.list.load_error")} ${errorText(err)}`;
      this.error.hidden = false;
    } finally {
      this.loading.hidden = true;
      this.schedulePoll();
    }
  }

  /** One load at a time; a refresh asked for during a load runs once more after it, so it sees what just changed. */
  refresh() {
    if (this.refreshing) {
      this.refreshAgain = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      do {
        this.refreshAgain = false;
        await this.load();
      } while (this.refreshAgain);
    })().finally(() => (this.refreshing = null));
    return this.refreshing;
  }
}
