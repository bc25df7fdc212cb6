// A consultation's row on the dashboard: who, when, its billing, its invitations, its documents (the section
// `documents.js` keeps), its audit trail (`audit.js`), and the panels an action opens (the cancel confirmation,
// the new link after a resend, an error or a notice).
import { el } from "../dom.js";
import { formatAmount, formatDateTime, formatDuration, locale, t } from "../i18n.js";
import { invitationLine } from "./invitation.js";

export const OPEN_STATUSES = new Set(["scheduled", "waiting", "in_progress"]);
export const CANCELLABLE = new Set(["scheduled", "waiting"]);

function cancelPanel(c, name, invitations, ui) {
  const busy = ui.busy.has(`${c.id}|cancel`);
  const names = invitations.map((i) => i.name).filter(Boolean);
  const listed = names.length ? new Intl.ListFormat(locale, { style: "long", type: "conjunction" }).format(names) : name;
  const text = t(names.length > 1 ? "dashboard.cancel.text_many" : "dashboard.cancel.text_one", { names: listed });
  const titleId = `${c.id}-cancel-title`;
  const textId = `${c.id}-cancel-text`;
  return el("div", {
    className: "consultation__panel confirm",
    id: `${c.id}-cancel`,
    role: "group",
    tabindex: "-1",
    "aria-labelledby": titleId,
    "aria-describedby": textId,
    "data-testid": "cancel-panel",
    "data-focus-key": "cancel-panel",
  },
  el("p", { className: "confirm__title", id: titleId, text: t("dashboard.cancel.title", { name }) }),
  el("p", { id: textId, text: `${text} ${t("dashboard.cancel.final")}` }),
  el("div", { className: "confirm__actions" },
    el("button", {
      type: "button",
      className: "btn btn--danger",
      "data-action": "cancel-confirm",
      "data-testid": "cancel-confirm",
      "data-focus-key": "cancel-confirm",
      "aria-busy": busy ? "true" : null,
      disabled: busy,
      text: t(busy ? "dashboard.cancel.cancelling" : "dashboard.cancel.confirm"),
    }),
    el("button", {
      type: "button",
      className: "btn btn--secondary",
      "data-action": "cancel-dismiss",
      "data-testid": "cancel-dismiss",
      "data-focus-key": "cancel-dismiss",
      disabled: busy,
      text: t("dashboard.cancel.dismiss"),
    })));
}

export function resentText(resent) {
  return t(resent.fixed ? "dashboard.invite.resent_fixed" : "dashboard.invite.resent", { email: resent.email || resent.name });
}

function resentPanel(c, resent) {
  const inputId = `${c.id}-resent-link`;
  const input = el("input", {
    id: inputId,
    type: "text",
    readonly: true,
    "data-testid": "resent-link",
    "data-focus-key": "resent-link",
  });
  input.value = resent.link;
  return el("div", { className: "consultation__panel resent", "data-testid": "resent" },
    el("p", { className: "resent__notice", "data-testid": "resent-notice", text: resentText(resent) }),
    el("div", { className: "field" },
      el("label", { for: inputId, text: t("dashboard.invite.resent_link", { name: resent.name }) }),
      el("div", { className: "copy-row" },
        input,
        el("button", {
          type: "button",
          className: "btn btn--secondary",
          "data-action": "resent-copy",
          "data-testid": "resent-copy",
          "data-focus-key": "resent-copy",
          "aria-label": t("dashboard.invite.copy_label", { name: resent.name }),
          text: t("dashboard.copy"),
        }))),
    el("div", { className: "resent__foot" },
      el("p", { className: "hint", text: resent.copied || "" }),
      el("button", {
        type: "button",
        className: "btn btn--ghost btn--compact",
        "data-action": "resent-close",
        "data-focus-key": "resent-close",
        "aria-label": t("dashboard.invite.close_label", { name: resent.name }),
        text: t("dashboard.invite.close"),
      })));
}

export function row(c, ui, documents = null, trail = null) {
  const name = c.patient_name || "—";
  const open = OPEN_STATUSES.has(c.status);
  const invitations = Array.isArray(c.invitations) ? c.invitations : [];
  const item = el("li", {
    className: "consultation",
    "data-testid": "consultation-row",
    "data-id": c.id,
    "data-status": c.status,
    "data-focus-key": "row",
    tabindex: "-1",
  });

  const main = el("div", { className: "consultation__main" });
  main.append(el("div", { className: "consultation__title" },
    el("p", { className: "consultation__name", text: name }),
    el("span", { className: `status status--${c.status}`, "data-testid": "consultation-status", text: t(`status.${c.status}`) })));
  if (c.nurse_name && !invitations.some((i) => i.role === "nurse")) {
    main.append(el("p", { className: "consultation__meta", text: t("dashboard.list.nurse", { name: c.nurse_name }) }));
  }
  let when;
  if (c.status === "ended" && c.ended_at) when = t("dashboard.list.ended_on", { when: formatDateTime(c.ended_at) });
  else if (c.scheduled_at) when = t("dashboard.list.scheduled_for", { when: formatDateTime(c.scheduled_at) });
  else when = t("dashboard.list.created_on", { when: formatDateTime(c.created_at) });
  main.append(el("p", { className: "consultation__meta", text: when }));

  const billing = c.billing;
  if (billing && Array.isArray(billing.acts)) {
    const acts = el("p", { className: "consultation__billing", "data-testid": "consultation-billing" });
    const parts = billing.acts.map((a) => `${a.act_code} ${formatAmount(a.amount_cents, billing.currency)}`);
    acts.textContent = parts.join(" + ");
    if (billing.acts.length > 1) acts.textContent += ` · ${t("dashboard.list.total", { amount: formatAmount(billing.total_cents, billing.currency) })}`;
    if (billing.duration_s !== null && billing.duration_s !== undefined) {
      acts.append(el("span", { className: "consultation__duration", text: ` · ${t("dashboard.list.duration", { duration: formatDuration(billing.duration_s) })}` }));
    }
    main.append(acts);
  }

  const side = el("div", { className: "consultation__side" });
  if (open) {
    side.append(el("a", {
      className: "btn btn--primary btn--small",
      href: `/c/${encodeURIComponent(c.id)}`,
      "aria-label": t("dashboard.list.open_label", { name }),
      "data-testid": "consultation-open",
      "data-focus-key": "open",
      text: t("dashboard.list.open"),
    }));
  }
  const confirming = CANCELLABLE.has(c.status) && ui.confirming.has(c.id);
  if (CANCELLABLE.has(c.status)) {
    side.append(el("button", {
      type: "button",
      className: "btn btn--quiet-danger btn--small",
      "data-action": "cancel",
      "data-testid": "cancel",
      "data-focus-key": "cancel",
      "aria-label": t("dashboard.cancel.action_label", { name }),
      "aria-expanded": confirming ? "true" : "false",
      "aria-controls": confirming ? `${c.id}-cancel` : null,
      text: t("dashboard.cancel.action"),
    }));
  }
  item.append(main);
  if (side.children.length) item.append(side);

  if (invitations.length) {
    const lines = el("ul", { className: "invites", "aria-label": t("dashboard.list.invitations", { name }) });
    for (const inv of invitations) lines.append(invitationLine(c, inv, open, ui));
    item.append(lines);
  }
  if (documents) {
    const section = documents.section(c);
    if (section.firstChild) item.append(section);
  }
  if (trail) item.append(trail.section(c));

  const error = ui.errors.get(c.id);
  if (error) item.append(el("p", { className: "consultation__panel alert alert--error", role: "alert", "data-testid": "row-error", text: error }));
  if (confirming) item.append(cancelPanel(c, name, invitations, ui));
  const resent = ui.resent.get(c.id);
  if (resent && open) item.append(resentPanel(c, resent));
  const notice = ui.notices.get(c.id);
  if (notice) item.append(el("p", { className: "consultation__panel alert alert--info", "data-testid": "row-notice", text: notice }));
  return item;
}
