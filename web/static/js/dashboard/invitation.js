// One invited person's line in a consultation row: who, how their mail stands, the resend and address buttons, and
// the inline form to send the invitation again to a corrected address.
import { el } from "../dom.js";
import { t } from "../i18n.js";
import { MAIL_STATUSES, cancellationBadge, mailBadge, mailReason, reasonLine } from "./badges.js";

export function invitationLine(c, inv, open, ui) {
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
  if (fixing) line.append(fixForm(c, inv, name, ui));
  return line;
}

export function fixFormId(id) {
  return `${id}-fix`;
}

/** The inline form to send the invitation again, to a corrected address. Built once per opening, then updated. */
function fixForm(c, inv, name, ui) {
  const state = ui.fixing.get(c.id);
  const busy = ui.busy.has(`${c.id}|fix|${inv.participant_id}`);
  let entry = ui.fixForms.get(c.id);
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
    ui.fixForms.set(c.id, entry);
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
