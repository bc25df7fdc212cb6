// The doctor's dashboard: create a consultation, copy the links, list the consultations.
import { api, ApiError, errorText } from "./api.js";
import { formatAmount, formatDateTime, formatDuration, parisLocalToIso, t } from "./i18n.js";

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
const moreButton = $("list-more");

const OPEN_STATUSES = new Set(["scheduled", "waiting", "in_progress"]);
const REFRESH_MS = 20000;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "className") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function goToLogin() {
  window.location.assign("/login");
}

// --- creating a consultation -------------------------------------------------------------------------------

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
    showCreated(consultation);
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

function showCreated(consultation) {
  $("patient-link").value = consultation.patient_link || "";
  const nurseField = $("nurse-link-field");
  nurseField.hidden = !consultation.nurse_link;
  $("nurse-link").value = consultation.nurse_link || "";
  $("start-call").href = `/c/${encodeURIComponent(consultation.id)}`;
  $("copy-status").textContent = "";
  created.hidden = false;
  created.focus();
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

let nextCursor = null;
let loadedCount = 0;

function row(c) {
  const name = c.patient_name || "—";
  const item = el("li", { className: "consultation", "data-testid": "consultation-row", "data-id": c.id, "data-status": c.status });

  const main = el("div", { className: "consultation__main" });
  main.append(el("p", { className: "consultation__name", text: name }));
  if (c.nurse_name) main.append(el("p", { className: "consultation__meta", text: t("dashboard.list.nurse", { name: c.nurse_name }) }));
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
  side.append(el("span", { className: `status status--${c.status}`, "data-testid": "consultation-status", text: t(`status.${c.status}`) }));
  if (OPEN_STATUSES.has(c.status)) {
    side.append(el("a", {
      className: "btn btn--primary btn--small",
      href: `/c/${encodeURIComponent(c.id)}`,
      "aria-label": t("dashboard.list.open_label", { name }),
      "data-testid": "consultation-open",
      text: t("dashboard.list.open"),
    }));
  }
  item.append(main, side);
  return item;
}

async function load({ append = false } = {}) {
  const limit = append ? 20 : Math.max(20, loadedCount);
  const query = new URLSearchParams({ limit: String(limit) });
  if (append && nextCursor) query.set("before", nextCursor);
  try {
    const page = await api(`/api/consultations?${query}`);
    const items = (page && page.items) || [];
    if (!append) list.replaceChildren();
    for (const c of items) list.append(row(c));
    loadedCount = list.children.length;
    nextCursor = page ? page.next : null;
    moreButton.hidden = !nextCursor;
    listEmpty.hidden = loadedCount > 0;
    listError.hidden = true;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return goToLogin();
    listError.textContent = `${t("dashboard.list.load_error")} ${errorText(err)}`;
    listError.hidden = false;
  } finally {
    listLoading.hidden = true;
  }
}

let refreshing = null;
function refresh() {
  if (!refreshing) refreshing = load().finally(() => (refreshing = null));
  return refreshing;
}

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
