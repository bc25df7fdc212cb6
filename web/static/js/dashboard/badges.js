// How a mail stands, as page elements: a badge per invitation or cancellation notice, and a sentence for why a mail
// is not delivered (the technical error kept in the tooltip). Pure builders: data in, nodes out.
import { el } from "../dom.js";
import { formatDateTime, t } from "../i18n.js";

export const MAIL_STATUSES = new Set(["queued", "sent", "failed"]);
const MAIL_REASONS = new Set(["retrying", "rejected", "gave_up", "superseded", "failed"]);
const REASON_MAX = 160;

function shorten(text) {
  return text.length > REASON_MAX ? `${text.slice(0, REASON_MAX - 1)}…` : text;
}

/** The server's reason code for a mail that is not (yet) delivered; derived from older answers without one. */
export function mailReason(mail) {
  if (!mail || mail.status === "sent") return null;
  if (mail.reason && MAIL_REASONS.has(mail.reason)) return mail.reason;
  if (mail.status === "queued") return mail.error ? "retrying" : null;
  if (mail.status === "failed") return mail.error === "superseded" ? "superseded" : "failed";
  return null;
}

export function mailBadge(mail) {
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
export function cancellationBadge(notice) {
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
export function reasonLine(mail, reason) {
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
