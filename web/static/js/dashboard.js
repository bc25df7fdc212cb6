// The doctor's dashboard: create a consultation, copy the links, follow the invitation mails, resend an
// invitation (to a corrected address if need be), cancel a consultation and follow its notices, list them.
import { api, ApiError, errorText } from "./api.js";
import { el } from "./dom.js";
import { formatAmount, formatDateTime, formatDuration, locale, parisLocalToIso, t } from "./i18n.js";

const $ = (id) => document.getElementById(id);

const form = $("new-form");
const submit = form.querySelector('[type="submit"]');
const submitLabel = submit.textContent;
const formError = $("new-error");
const created = $("created");
const list = $("consultations");
const listError = $("list-error");
const listEmpty = $("list-empty");
const listLoading = $("list-loading");
const listStatus = $("list-status");
const moreButton = $("list-more");

const OPEN_STATUSES = new Set(["scheduled", "waiting", "in_progress"]);
const CANCELLABLE = new Set(["scheduled", "waiting"]);
const MAIL_STATUSES = new Set(["queued", "sent", "failed"]);
const MAIL_REASONS = new Set(["retrying", "rejected", "gave_up", "superseded", "failed"]);
const REFRESH_MS = 20000;
const MAIL_POLL_MS = 5000;
const REASON_MAX = 160;

function goToLogin() {
  window.location.assign("/login");
}

// --- creating a consultation -------------------------------------------------------------------------------

let createdId = null;
let createdEmails = { patient: "", nurse: "" }; // the addresses the creation box says it mails to

function showFormError(text) {
  formError.textContent = text;
  formError.hidden = false;
}

function formBody() {
  const value = (name) => form.elements[name].value.trim();
  const body = { patient_name: value("patient_name"), patient_email: value("patient_email"), language: value("language") };
  const scheduled = parisLocalToIso(form.elements.scheduled_at.value);
  if (scheduled) body.scheduled_at = scheduled;
  if (value("nurse_name")) body.nurse_name = value("nurse_name");
  if (value("nurse_email")) body.nurse_email = value("nurse_email");
  return body;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  formError.hidden = true;
  const body = formBody();
  if (body.nurse_email && !body.nurse_name) {
    showFormError(t("dashboard.new.nurse_name_required"));
    form.elements.nurse_name.focus();
    return;
  }
  submit.disabled = true;
  submit.textContent = submit.dataset.busyLabel || submitLabel;
  try {
    const consultation = await api("/api/consultations", { method: "POST", body });
    showCreated(consultation, body);
    form.reset();
    refresh();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return goToLogin();
    showFormError(errorText(err));
  } finally {
    submit.disabled = false;
    submit.textContent = submitLabel;
  }
});

function showCreated(consultation, body) {
  createdId = consultation.id;
  $("patient-link").value = consultation.patient_link || "";
  const nurseField = $("nurse-link-field");
  nurseField.hidden = !consultation.nurse_link;
  $("nurse-link").value = consultation.nurse_link || "";
  createdEmails = { patient: body.patient_email, nurse: consultation.nurse_link ? body.nurse_email || "" : "" };
  showCreatedSending();
  $("start-call").href = `/c/${encodeURIComponent(consultation.id)}`;
  $("copy-status").textContent = "";
  created.hidden = false;
  created.focus();
}

function showCreatedSending() {
  const { patient, nurse } = createdEmails;
  $("created-sending").textContent = nurse
    ? t("dashboard.created.sending_nurse", { email: patient, nurse_email: nurse })
    : t("dashboard.created.sending", { email: patient });
}

async function copyFrom(input) {
  const text = input.value;
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    input.focus();
    input.select();
    try {
      return document.execCommand("copy");
    } catch {
      return false;
    }
  }
}

created.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const ok = await copyFrom($(button.dataset.copy));
  $("copy-status").textContent = ok ? t("dashboard.copied") : t("dashboard.copy_failed");
});

for (const id of ["patient-link", "nurse-link"]) $(id).addEventListener("focus", (e) => e.target.select());

// --- the list ----------------------------------------------------------------------------------------------

let items = [];
let nextCursor = null;

// What the page shows beside the server's data; kept across refreshes, which rebuild the rows that changed.
const ui = {
  confirming: new Set(), // consultation ids whose cancel confirmation is open
  busy: new Set(), // "<id>|cancel", "<id>|resend|<participant id>" or "<id>|fix|<participant id>" while it runs
  resent: new Map(), // id -> {participantId, name, email, fixed, link, copied}
  fixing: new Map(), // id -> {participantId, error}: the open address form of that row (one at a time)
  errors: new Map(), // id -> text
  notices: new Map(), // id -> text
};
const rendered = new Map(); // id -> {key, node}
// The open address forms, kept as nodes: a row rebuilt by a refresh takes the same form back, so what the
// doctor is typing (and where the caret is) survives.
const fixForms = new Map(); // id -> {participantId, form}
let pendingFocus = null; // {id, key}: where focus goes after the next render

function uiState(id) {
  return JSON.stringify([
    ui.confirming.has(id),
    [...ui.busy].filter((key) => key.startsWith(`${id}|`)),
    ui.resent.get(id) || null,
    ui.fixing.get(id) || null,
    ui.errors.get(id) || null,
    ui.notices.get(id) || null,
  ]);
}

function announce(text) {
  listStatus.textContent = text;
}

function shorten(text) {
  return text.length > REASON_MAX ? `${text.slice(0, REASON_MAX - 1)}…` : text;
}

/** The server's reason code for a mail that is not (yet) delivered; derived from older answers without one. */
function mailReason(mail) {
  if (!mail || mail.status === "sent") return null;
  if (mail.reason && MAIL_REASONS.has(mail.reason)) return mail.reason;
  if (mail.status === "queued") return mail.error ? "retrying" : null;
  if (mail.status === "failed") return mail.error === "superseded" ? "superseded" : "failed";
  return null;
}

function mailBadge(mail) {
  const superseded = mailReason(mail) === "superseded";
  let title = null;
  if (mail.status === "sent" && mail.sent_at) {
    title = t("dashboard.invite.mail.sent_at", { when: formatDateTime(mail.sent_at) });
  } else if (mail.status === "queued") {
    title = mail.error
      ? t("dashboard.invite.mail.retrying", { error: mail.error })
      : t("dashboard.invite.mail.queued_since", { when: formatDateTime(mail.created_at) });
  } else if (mail.status === "failed" && !superseded && mail.error) {
    title = mail.error;
  }
  return el("span", {
    className: `mail mail--${superseded ? "superseded" : mail.status}`,
    "data-testid": "invitation-status",
    "data-status": mail.status,
    title,
    text: t(superseded ? "dashboard.invite.mail.superseded" : `dashboard.invite.mail.${mail.status}`),
  });
}

/** Whether the cancellation notice went out: on the lines of a cancelled consultation. */
function cancellationBadge(notice) {
  let title = null;
  if (notice.status === "sent" && notice.sent_at) title = t("dashboard.cancel.mail.sent_at", { when: formatDateTime(notice.sent_at) });
  else if (notice.status === "queued" && notice.error) title = t("dashboard.invite.last_error", { error: notice.error });
  else if (notice.status === "failed" && notice.error) title = notice.error;
  return el("span", {
    className: `mail mail--${notice.status}`,
    "data-testid": "cancellation-status",
    "data-status": notice.status,
    title,
    text: t(`dashboard.cancel.mail.${notice.status}`),
  });
}

/**
 * A short sentence for why a mail is not delivered, the technical error kept in the tooltip. `urgent` says
 * whether it needs the doctor (shown in red), else it is a quiet hint.
 */
function reasonLine(mail, reason) {
  const error = mail.error || "";
  const texts = {
    retrying: [t("dashboard.invite.reason.retrying"), error ? t("dashboard.invite.last_error", { error }) : null, false],
    superseded: [t("dashboard.invite.reason.superseded"), null, false],
    rejected: [t("dashboard.invite.reason.rejected"), error || null, true],
    gave_up: [t("dashboard.invite.reason.gave_up"), error || null, true],
    failed: [t("dashboard.invite.reason.failed", { error: shorten(error || "—") }), error || null, true],
  };
  const [text, title, urgent] = texts[reason];
  return el("p", {
    className: urgent ? "invite__reason" : "invite__hint",
    "data-testid": "invitation-reason",
    "data-reason": reason,
    title,
    text,
  });
}

function invitationLine(c, inv, open) {
  const role = t(`role.${inv.role}`);
  const name = inv.name || role;
  const line = el("li", { className: "invite", "data-testid": "invitation", "data-role": inv.role, "data-participant": inv.participant_id });
  const who = el("span", { className: "invite__who" }, el("span", { className: "invite__role", text: role }));
  if (inv.name) who.append(` ${inv.name}`);
  if (inv.email) who.append(" ", el("span", { className: "invite__email", "data-testid": "invitation-email", text: inv.email }));
  line.append(who);

  const mail = inv.mail && MAIL_STATUSES.has(inv.mail.status) ? inv.mail : null;
  const reason = mailReason(mail);
  const notice = c.status === "cancelled" && inv.cancellation && MAIL_STATUSES.has(inv.cancellation.status) ? inv.cancellation : null;
  // Once cancelled, what matters is whether the person was told; before, whether the invitation went out.
  if (notice) line.append(cancellationBadge(notice));
  else if (mail) line.append(mailBadge(mail));
  if (open && ["used", "revoked", "expired"].includes(inv.link)) {
    line.append(el("span", { className: `invite__link invite__link--${inv.link}`, "data-testid": "invitation-link", "data-link": inv.link, text: t(`dashboard.invite.link.${inv.link}`) }));
  }

  // A scheduled consultation's links expire a day after its time; a new one would be born expired.
  const canResend = open && !(inv.link === "expired" && c.scheduled_at);
  const failed = mail && mail.status === "failed" && reason !== "superseded";
  const fixing = canResend && (ui.fixing.get(c.id) || {}).participantId === inv.participant_id;
  if (canResend) {
    const actions = el("span", { className: "invite__actions" });
    const fixBusy = ui.busy.has(`${c.id}|fix|${inv.participant_id}`);
    actions.append(el("button", {
      type: "button",
      className: `btn ${failed ? "btn--secondary" : "btn--ghost"} btn--compact`,
      "data-testid": "fix-email",
      "data-action": "fix-email",
      "data-participant": inv.participant_id,
      "data-focus-key": `fix:${inv.participant_id}`,
      "aria-label": t(failed ? "dashboard.invite.fix_label" : "dashboard.invite.edit_label", { name }),
      "aria-expanded": fixing ? "true" : "false",
      "aria-controls": fixing ? fixFormId(c.id) : null,
      disabled: fixBusy,
      text: t(failed ? "dashboard.invite.fix" : "dashboard.invite.edit"),
    }));
    const busy = ui.busy.has(`${c.id}|resend|${inv.participant_id}`);
    actions.append(el("button", {
      type: "button",
      className: "btn btn--secondary btn--compact invite__resend",
      "data-testid": "resend",
      "data-action": "resend",
      "data-participant": inv.participant_id,
      "data-focus-key": `resend:${inv.participant_id}`,
      "aria-label": t("dashboard.invite.resend_label", { name }),
      "aria-busy": busy ? "true" : null,
      disabled: busy || fixBusy,
      text: t(busy ? "dashboard.invite.resending" : "dashboard.invite.resend"),
    }));
    line.append(actions);
  }

  if (notice) {
    if (notice.status === "failed") {
      const noticeReason = mailReason(notice);
      if (noticeReason && noticeReason !== "superseded") line.append(reasonLine(notice, noticeReason));
      line.append(el("p", { className: "invite__hint", text: t("dashboard.cancel.failed_hint") }));
    }
  } else if (failed) {
    line.append(reasonLine(mail, reason));
    if (canResend && reason !== "rejected") line.append(el("p", { className: "invite__hint", text: t("dashboard.invite.failed_hint") }));
  } else if (reason && open) {
    line.append(reasonLine(mail, reason));
  }
  if (fixing) line.append(fixForm(c, inv, name));
  return line;
}

function fixFormId(id) {
  return `${id}-fix`;
}

/** The inline form to send the invitation again, to a corrected address. Built once per opening, then updated. */
function fixForm(c, inv, name) {
  const state = ui.fixing.get(c.id);
  const busy = ui.busy.has(`${c.id}|fix|${inv.participant_id}`);
  let entry = fixForms.get(c.id);
  if (!entry || entry.participantId !== inv.participant_id) {
    const formId = fixFormId(c.id);
    const input = el("input", {
      id: `${formId}-email`,
      name: "email",
      type: "email",
      required: true,
      autocomplete: "off",
      inputmode: "email",
      autocapitalize: "none",
      spellcheck: "false",
      maxlength: "320",
      "aria-describedby": `${formId}-hint`,
      "data-testid": "fix-email-input",
      "data-focus-key": "fix-email-input",
    });
    input.value = inv.email || "";
    const form = el("form", {
      id: formId,
      className: "fix",
      novalidate: true,
      "data-testid": "fix-email-form",
      "data-participant": inv.participant_id,
    },
    el("label", { for: input.id, className: "fix__label", text: t("dashboard.invite.fix_email", { name }) }),
    input,
    el("p", { id: `${formId}-error`, className: "fix__error", role: "alert", "data-testid": "fix-email-error", hidden: true }),
    el("div", { className: "fix__actions" },
      el("button", { type: "submit", className: "btn btn--primary btn--compact", "data-testid": "fix-email-submit", "data-focus-key": "fix-email-submit" }),
      el("button", {
        type: "button",
        className: "btn btn--ghost btn--compact",
        "data-action": "fix-email-close",
        "data-focus-key": "fix-email-close",
        "aria-label": t("dashboard.invite.fix_close_label", { name }),
        text: t("dashboard.invite.fix_close"),
      })),
    el("p", { id: `${formId}-hint`, className: "hint", text: t("dashboard.invite.fix_hint") }));
    entry = { participantId: inv.participant_id, form };
    fixForms.set(c.id, entry);
  }
  const { form } = entry;
  const input = form.elements.email;
  const submitButton = form.querySelector('[type="submit"]');
  const errorNode = form.querySelector(".fix__error");
  const error = state && state.error;
  if (errorNode.textContent !== (error || "")) errorNode.textContent = error || "";
  errorNode.hidden = !error;
  input.readOnly = busy;
  input.setAttribute("aria-invalid", error ? "true" : "false");
  input.setAttribute("aria-describedby", error ? `${errorNode.id} ${form.id}-hint` : `${form.id}-hint`);
  // A plain resend of the same person running meanwhile would race this one for the newest link.
  submitButton.disabled = busy || ui.busy.has(`${c.id}|resend|${inv.participant_id}`);
  if (busy) submitButton.setAttribute("aria-busy", "true");
  else submitButton.removeAttribute("aria-busy");
  submitButton.textContent = t(busy ? "dashboard.invite.resending" : "dashboard.invite.fix_submit");
  return form;
}

function cancelPanel(c, name, invitations) {
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

function resentText(resent) {
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

function row(c) {
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
    for (const inv of invitations) lines.append(invitationLine(c, inv, open));
    item.append(lines);
  }

  const error = ui.errors.get(c.id);
  if (error) item.append(el("p", { className: "consultation__panel alert alert--error", role: "alert", "data-testid": "row-error", text: error }));
  if (confirming) item.append(cancelPanel(c, name, invitations));
  const resent = ui.resent.get(c.id);
  if (resent && open) item.append(resentPanel(c, resent));
  const notice = ui.notices.get(c.id);
  if (notice) item.append(el("p", { className: "consultation__panel alert alert--info", "data-testid": "row-notice", text: notice }));
  return item;
}

/** Bring the list in line with `items`, rebuilding only the rows whose data or page state changed. */
function render() {
  const active = document.activeElement;
  let kept = null;
  if (active && list.contains(active) && active.dataset.focusKey) {
    kept = { id: active.closest("[data-id]").dataset.id, key: active.dataset.focusKey };
  }
  const wanted = pendingFocus;
  pendingFocus = null;

  const seen = new Set();
  let index = 0;
  for (const c of items) {
    if (seen.has(c.id)) continue;
    seen.add(c.id);
    const key = JSON.stringify(c) + uiState(c.id);
    let entry = rendered.get(c.id);
    if (!entry || entry.key !== key) {
      const node = row(c);
      if (entry && entry.node.parentNode === list) list.replaceChild(node, entry.node);
      entry = { key, node };
      rendered.set(c.id, entry);
    }
    const current = list.children[index];
    if (current !== entry.node) list.insertBefore(entry.node, current || null);
    index += 1;
  }
  while (list.children.length > index) list.lastElementChild.remove();
  for (const id of [...rendered.keys()]) if (!seen.has(id)) rendered.delete(id);
  // A form whose row no longer shows it (the consultation closed, the line went) is dropped with its state.
  for (const [id, entry] of [...fixForms]) {
    if (!entry.form.isConnected) {
      fixForms.delete(id);
      ui.fixing.delete(id);
    }
  }

  // Focus: where an action asked for it, or back where it was when a refresh rebuilt that row.
  const target = wanted || kept;
  if (!target) return;
  const focusLost = !document.activeElement || document.activeElement === document.body;
  if (!wanted && !focusLost) return;
  const rowNode = [...list.children].find((node) => node.dataset.id === target.id);
  if (!rowNode) return;
  let node = target.key === "row" ? rowNode : rowNode.querySelector(`[data-focus-key="${CSS.escape(target.key)}"]`);
  if (!node || node.disabled) node = rowNode;
  if (document.activeElement !== node) node.focus({ preventScroll: !wanted });
}

function hasQueuedMail() {
  const queued = (mail) => Boolean(mail && mail.status === "queued");
  return items.some((c) => (c.invitations || []).some((i) => queued(i.mail) || queued(i.cancellation)));
}

let pollTimer = null;
function schedulePoll() {
  clearTimeout(pollTimer);
  pollTimer = null;
  if (!hasQueuedMail()) return;
  pollTimer = setTimeout(() => {
    pollTimer = null;
    if (document.visibilityState === "visible") refresh();
  }, MAIL_POLL_MS);
}

async function load({ append = false } = {}) {
  const limit = append ? 20 : Math.max(20, items.length);
  const query = new URLSearchParams({ limit: String(limit) });
  if (append && nextCursor) query.set("before", nextCursor);
  try {
    const page = await api(`/api/consultations?${query}`);
    const got = (page && page.items) || [];
    if (append) {
      const known = new Set(items.map((c) => c.id));
      items = items.concat(got.filter((c) => !known.has(c.id)));
    } else {
      items = got;
    }
    nextCursor = page ? page.next : null;
    render();
    moreButton.hidden = !nextCursor;
    listEmpty.hidden = items.length > 0;
    listError.hidden = true;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return goToLogin();
    listError.textContent = `${t("dashboard.list.load_error")} ${errorText(err)}`;
    listError.hidden = false;
  } finally {
    listLoading.hidden = true;
    schedulePoll();
  }
}

// One load at a time; a refresh asked for during a load runs once more after it, so it sees what just changed.
let refreshing = null;
let refreshAgain = false;
function refresh() {
  if (refreshing) {
    refreshAgain = true;
    return refreshing;
  }
  refreshing = (async () => {
    do {
      refreshAgain = false;
      await load();
    } while (refreshAgain);
  })().finally(() => (refreshing = null));
  return refreshing;
}

// --- actions in a row --------------------------------------------------------------------------------------

function invitationOf(c, participantId) {
  return (c.invitations || []).find((i) => i.participant_id === participantId) || null;
}

async function resend(c, participantId) {
  const inv = invitationOf(c, participantId);
  const name = (inv && (inv.name || t(`role.${inv.role}`))) || "";
  const busyKey = `${c.id}|resend|${participantId}`;
  ui.busy.add(busyKey);
  ui.errors.delete(c.id);
  ui.notices.delete(c.id);
  render();
  try {
    const result = await api(`/api/consultations/${encodeURIComponent(c.id)}/invitations`, {
      method: "POST",
      body: { participant_id: participantId },
    });
    showResent(c, result, { participantId, name, email: inv && inv.email, fixed: false });
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return goToLogin();
    ui.errors.set(c.id, errorText(err, "dashboard.invite.error"));
    pendingFocus = { id: c.id, key: `resend:${participantId}` };
  } finally {
    ui.busy.delete(busyKey);
  }
  render();
  await refresh();
}

function showResent(c, result, resent) {
  ui.resent.set(c.id, { ...resent, link: result.link, copied: "" });
  if (c.id === createdId && (result.role === "patient" || result.role === "nurse")) {
    $(`${result.role}-link`).value = result.link;
    // The creation box names the addresses it mailed: a corrected one replaces the mistyped one there too.
    if (resent.fixed && resent.email) {
      createdEmails = { ...createdEmails, [result.role]: resent.email };
      showCreatedSending();
    }
  }
  announce(resentText(resent));
  pendingFocus = { id: c.id, key: "resent-link" };
}

function openFix(c, participantId) {
  const open = ui.fixing.get(c.id);
  if (open && open.participantId === participantId) return closeFix(c.id);
  fixForms.delete(c.id);
  ui.fixing.set(c.id, { participantId, error: null });
  pendingFocus = { id: c.id, key: "fix-email-input" };
  render();
}

function closeFix(id) {
  const open = ui.fixing.get(id);
  if (!open || ui.busy.has(`${id}|fix|${open.participantId}`)) return;
  ui.fixing.delete(id);
  fixForms.delete(id);
  pendingFocus = { id, key: `fix:${open.participantId}` };
  render();
}

function setFixError(id, text) {
  const state = ui.fixing.get(id);
  if (state) ui.fixing.set(id, { ...state, error: text });
  pendingFocus = { id, key: "fix-email-input" };
}

/** Send the invitation again to the address typed in the row's form. */
async function resendTo(c, form) {
  const state = ui.fixing.get(c.id);
  if (!state) return;
  const { participantId } = state;
  const input = form.elements.email;
  const email = input.value.trim();
  if (!email || !input.checkValidity()) {
    setFixError(c.id, t("dashboard.invite.error.bad_request"));
    render();
    return;
  }
  const inv = invitationOf(c, participantId);
  const name = (inv && (inv.name || t(`role.${inv.role}`))) || "";
  const busyKey = `${c.id}|fix|${participantId}`;
  ui.busy.add(busyKey);
  ui.errors.delete(c.id);
  ui.notices.delete(c.id);
  ui.fixing.set(c.id, { participantId, error: null });
  render();
  let done = false;
  try {
    const result = await api(`/api/consultations/${encodeURIComponent(c.id)}/invitations`, {
      method: "POST",
      body: { participant_id: participantId, email },
    });
    const fixed = !inv || (inv.email || "").toLowerCase() !== email.toLowerCase();
    showResent(c, result, { participantId, name, email, fixed });
    done = true;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return goToLogin();
    setFixError(c.id, errorText(err, "dashboard.invite.error"));
  } finally {
    ui.busy.delete(busyKey);
  }
  if (done) {
    ui.fixing.delete(c.id);
    fixForms.delete(c.id);
  }
  render();
  await refresh();
}

async function cancel(c) {
  const busyKey = `${c.id}|cancel`;
  ui.busy.add(busyKey);
  ui.errors.delete(c.id);
  render();
  try {
    const updated = await api(`/api/consultations/${encodeURIComponent(c.id)}/cancel`, { method: "POST" });
    if (updated && updated.id === c.id) items = items.map((x) => (x.id === c.id ? { ...x, ...updated } : x));
    ui.resent.delete(c.id);
    ui.notices.set(c.id, t("dashboard.cancel.done"));
    announce(t("dashboard.cancel.done"));
    if (c.id === createdId) created.hidden = true;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return goToLogin();
    ui.errors.set(c.id, errorText(err, "dashboard.cancel.error"));
  } finally {
    ui.busy.delete(busyKey);
    ui.confirming.delete(c.id);
  }
  pendingFocus = { id: c.id, key: "row" };
  render();
  await refresh();
}

list.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-action]");
  if (!button || button.disabled) return;
  const rowNode = button.closest("[data-id]");
  const id = rowNode.dataset.id;
  const c = items.find((x) => x.id === id);
  if (!c) return;
  switch (button.dataset.action) {
    case "resend":
      await resend(c, button.dataset.participant);
      break;
    case "fix-email":
      openFix(c, button.dataset.participant);
      break;
    case "fix-email-close":
      closeFix(id);
      break;
    case "cancel":
      if (ui.confirming.has(id)) {
        ui.confirming.delete(id);
        pendingFocus = { id, key: "cancel" };
      } else {
        ui.confirming.add(id);
        ui.errors.delete(id);
        pendingFocus = { id, key: "cancel-panel" };
      }
      render();
      break;
    case "cancel-dismiss":
      ui.confirming.delete(id);
      pendingFocus = { id, key: "cancel" };
      render();
      break;
    case "cancel-confirm":
      await cancel(c);
      break;
    case "resent-copy": {
      const entry = ui.resent.get(id);
      const ok = await copyFrom(rowNode.querySelector('[data-testid="resent-link"]'));
      const text = ok ? t("dashboard.copied") : t("dashboard.copy_failed");
      if (entry) entry.copied = text;
      announce(text);
      pendingFocus = { id, key: ok ? "resent-copy" : "resent-link" };
      render();
      break;
    }
    case "resent-close": {
      const entry = ui.resent.get(id);
      ui.resent.delete(id);
      pendingFocus = { id, key: entry ? `resend:${entry.participantId}` : "row" };
      render();
      break;
    }
    default:
      break;
  }
});

list.addEventListener("submit", async (event) => {
  const form = event.target.closest("form.fix");
  if (!form) return;
  event.preventDefault();
  const id = form.closest("[data-id]").dataset.id;
  const c = items.find((x) => x.id === id);
  if (!c || ui.busy.has(`${id}|fix|${form.dataset.participant}`)) return;
  await resendTo(c, form);
});

// Escape closes an open cancel confirmation, as it would a dialog, and an open address form.
list.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  const fix = event.target.closest("form.fix");
  if (fix) {
    closeFix(fix.closest("[data-id]").dataset.id);
    return;
  }
  const panel = event.target.closest(".confirm");
  if (!panel) return;
  const id = panel.closest("[data-id]").dataset.id;
  if (ui.busy.has(`${id}|cancel`)) return;
  ui.confirming.delete(id);
  pendingFocus = { id, key: "cancel" };
  render();
});

list.addEventListener("focusin", (event) => {
  if (event.target.matches('[data-testid="resent-link"]')) event.target.select();
});

$("list-refresh").addEventListener("click", () => refresh());
moreButton.addEventListener("click", () => load({ append: true }));
setInterval(() => {
  if (document.visibilityState === "visible") refresh();
}, REFRESH_MS);
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") refresh();
});

// --- logout ------------------------------------------------------------------------------------------------

$("logout").addEventListener("click", async () => {
  try {
    await api("/api/logout", { method: "POST" });
  } catch {
    // Going to the login page is right whatever happened.
  }
  goToLogin();
});

refresh();
