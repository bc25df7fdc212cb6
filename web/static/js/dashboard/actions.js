// What the doctor does in a row: resend an invitation, send it to a corrected address, cancel the consultation
// (after an in-page confirmation), copy or close the new link. Listens on the list for clicks, submits and Escape.
import { api, ApiError, errorText } from "../api.js";
import { t } from "../i18n.js";
import { copyFrom } from "./copy.js";
import { resentText } from "./row.js";

function invitationOf(c, participantId) {
  return (c.invitations || []).find((i) => i.participant_id === participantId) || null;
}

function nameOf(inv) {
  return (inv && (inv.name || t(`role.${inv.role}`))) || "";
}

export class RowActions {
  /**
   * @param {import("./list.js").ConsultationList} list
   * @param {import("./create.js").NewConsultation} creation  the creation box, which shows the newest links
   * @param {() => void} onUnauthorized
   */
  constructor(list, creation, onUnauthorized) {
    this.list = list;
    this.ui = list.ui;
    this.creation = creation;
    this.onUnauthorized = onUnauthorized;
  }

  start() {
    const node = this.list.list;
    node.addEventListener("click", (event) => this.click(event));
    node.addEventListener("submit", (event) => this.submit(event));
    node.addEventListener("keydown", (event) => this.escape(event));
    node.addEventListener("focusin", (event) => {
      if (event.target.matches('[data-testid="resent-link"]')) event.target.select();
    });
  }

  render() {
    this.list.render();
  }

  async post(c, body) {
    return api(`/api/consultations/${encodeURIComponent(c.id)}/invitations`, { method: "POST", body });
  }

  async resend(c, participantId) {
    const inv = invitationOf(c, participantId);
    const busyKey = `${c.id}|resend|${participantId}`;
    this.ui.busy.add(busyKey);
    this.ui.errors.delete(c.id);
    this.ui.notices.delete(c.id);
    this.render();
    try {
      const result = await this.post(c, { participant_id: participantId });
      this.showResent(c, result, { participantId, name: nameOf(inv), email: inv && inv.email, fixed: false });
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return this.onUnauthorized();
      this.ui.errors.set(c.id, errorText(err, "dashboard.invite.error"));
      this.ui.focusNext(c.id, `resend:${participantId}`);
    } finally {
      this.ui.busy.delete(busyKey);
    }
    this.render();
    await this.list.refresh();
  }

  showResent(c, result, resent) {
    this.ui.resent.set(c.id, { ...resent, link: result.link, copied: "" });
    this.creation.linkResent(c.id, result.role, result.link, resent.fixed ? resent.email : null);
    this.list.announce(resentText(resent));
    this.ui.focusNext(c.id, "resent-link");
  }

  openFix(c, participantId) {
    const open = this.ui.fixing.get(c.id);
    if (open && open.participantId === participantId) return this.closeFix(c.id);
    this.ui.fixForms.delete(c.id);
    this.ui.fixing.set(c.id, { participantId, error: null });
    this.ui.focusNext(c.id, "fix-email-input");
    this.render();
  }

  closeFix(id) {
    const open = this.ui.fixing.get(id);
    if (!open || this.ui.busy.has(`${id}|fix|${open.participantId}`)) return;
    this.ui.fixing.delete(id);
    this.ui.fixForms.delete(id);
    this.ui.focusNext(id, `fix:${open.participantId}`);
    this.render();
  }

  setFixError(id, text) {
    const state = this.ui.fixing.get(id);
    if (state) this.ui.fixing.set(id, { ...state, error: text });
    this.ui.focusNext(id, "fix-email-input");
  }

  /** Send the invitation again to the address typed in the row's form. */
  async resendTo(c, form) {
    const state = this.ui.fixing.get(c.id);
    if (!state) return;
    const { participantId } = state;
    const input = form.elements.email;
    const email = input.value.trim();
    if (!email || !input.checkValidity()) {
      this.setFixError(c.id, t("dashboard.invite.error.bad_request"));
      this.render();
      return;
    }
    const inv = invitationOf(c, participantId);
    const busyKey = `${c.id}|fix|${participantId}`;
    this.ui.busy.add(busyKey);
    this.ui.errors.delete(c.id);
    this.ui.notices.delete(c.id);
    this.ui.fixing.set(c.id, { participantId, error: null });
    this.render();
    let done = false;
    try {
      const result = await this.post(c, { participant_id: participantId, email });
      const fixed = !inv || (inv.email || "").toLowerCase() !== email.toLowerCase();
      this.showResent(c, result, { participantId, name: nameOf(inv), email, fixed });
      done = true;
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return this.onUnauthorized();
      this.setFixError(c.id, errorText(err, "dashboard.invite.error"));
    } finally {
      this.ui.busy.delete(busyKey);
    }
    if (done) {
      this.ui.fixing.delete(c.id);
      this.ui.fixForms.delete(c.id);
    }
    this.render();
    await this.list.refresh();
  }

  async cancel(c) {
    const busyKey = `${c.id}|cancel`;
    this.ui.busy.add(busyKey);
    this.ui.errors.delete(c.id);
    this.render();
    try {
      const updated = await api(`/api/consultations/${encodeURIComponent(c.id)}/cancel`, { method: "POST" });
      if (updated && updated.id === c.id) this.list.update(updated);
      this.ui.resent.delete(c.id);
      this.ui.notices.set(c.id, t("dashboard.cancel.done"));
      this.list.announce(t("dashboard.cancel.done"));
      this.creation.cancelled(c.id);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return this.onUnauthorized();
      this.ui.errors.set(c.id, errorText(err, "dashboard.cancel.error"));
    } finally {
      this.ui.busy.delete(busyKey);
      this.ui.confirming.delete(c.id);
    }
    this.ui.focusNext(c.id, "row");
    this.render();
    await this.list.refresh();
  }

  toggleConfirm(id, open) {
    if (open) {
      this.ui.confirming.add(id);
      this.ui.errors.delete(id);
      this.ui.focusNext(id, "cancel-panel");
    } else {
      this.ui.confirming.delete(id);
      this.ui.focusNext(id, "cancel");
    }
    this.render();
  }

  async copyResent(id, rowNode) {
    const entry = this.ui.resent.get(id);
    const ok = await copyFrom(rowNode.querySelector('[data-testid="resent-link"]'));
    const text = ok ? t("dashboard.copied") : t("dashboard.copy_failed");
    if (entry) entry.copied = text;
    this.list.announce(text);
    this.ui.focusNext(id, ok ? "resent-copy" : "resent-link");
    this.render();
  }

  closeResent(id) {
    const entry = this.ui.resent.get(id);
    this.ui.resent.delete(id);
    this.ui.focusNext(id, entry ? `resend:${entry.participantId}` : "row");
    this.render();
  }

  async click(event) {
    const button = event.target.closest("[data-action]");
    if (!button || button.disabled) return;
    const rowNode = button.closest("[data-id]");
    const id = rowNode.dataset.id;
    const c = this.list.find(id);
    if (!c) return;
    const participant = button.dataset.participant;
    const actions = {
      resend: () => this.resend(c, participant),
      "fix-email": () => this.openFix(c, participant),
      "fix-email-close": () => this.closeFix(id),
      cancel: () => this.toggleConfirm(id, !this.ui.confirming.has(id)),
      "cancel-dismiss": () => this.toggleConfirm(id, false),
      "cancel-confirm": () => this.cancel(c),
      "resent-copy": () => this.copyResent(id, rowNode),
      "resent-close": () => this.closeResent(id),
    };
    const action = actions[button.dataset.action];
    if (action) await action();
  }

  async submit(event) {
    const form = event.target.closest("form.fix");
    if (!form) return;
    event.preventDefault();
    const id = form.closest("[data-id]").dataset.id;
    const c = this.list.find(id);
    if (!c || this.ui.busy.has(`${id}|fix|${form.dataset.participant}`)) return;
    await this.resendTo(c, form);
  }

  /** Escape closes an open address form, and an open cancel confirmation, as it would a dialog. */
  escape(event) {
    if (event.key !== "Escape") return;
    const fix = event.target.closest("form.fix");
    if (fix) {
      this.closeFix(fix.closest("[data-id]").dataset.id);
      return;
    }
    const panel = event.target.closest(".confirm");
    if (!panel) return;
    const id = panel.closest("[data-id]").dataset.id;
    if (this.ui.busy.has(`${id}|cancel`)) return;
    this.toggleConfirm(id, false);
  }
}
