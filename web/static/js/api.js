// fetch() for the JSON API: adds the CSRF header on unsafe requests and turns error bodies into ApiError.
import { has, t } from "./i18n.js";

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null, { field = null, detail = null } = {}) {
    super(message || code);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
    /** The request field at fault, and a finer code than `code` (translated as `error.detail.<detail>`). */
    this.field = field;
    this.detail = detail;
  }
}

let csrfOverride = null;

/** The CSRF token: the one set by setCsrfToken (participants, after /api/join), else the page's meta tag. */
export function csrfToken() {
  if (csrfOverride) return csrfOverride;
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.getAttribute("content") || "" : "";
}

export function setCsrfToken(token) {
  csrfOverride = token || null;
}

const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/**
 * Call the API. Resolves with the parsed JSON body (or null); rejects with ApiError, whose `code` is the
 * server's error code, or "network" when the server could not be reached.
 */
export async function api(path, { method = "GET", body, csrf = true, signal } = {}) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin", cache: "no-store", signal };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (csrf && UNSAFE.has(method)) {
    const token = csrfToken();
    if (token) headers["X-CSRF-Token"] = token;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error && error.name === "AbortError") throw error;
    throw new ApiError(0, "network", String(error));
  }
  let data = null;
  if ((response.headers.get("Content-Type") || "").includes("application/json")) {
    data = await response.json().catch(() => null);
  }
  if (!response.ok) {
    const retry = Number(response.headers.get("Retry-After")) || null;
    const code = (data && data.error) || `http_${response.status}`;
    const where = { field: (data && data.field) || null, detail: (data && data.detail) || null };
    throw new ApiError(response.status, code, data && data.message, retry, where);
  }
  return data;
}

/** A translated sentence for an error, from its code; `prefix` lets a page give its own wording first. */
export function errorText(error, prefix = "") {
  const code = error && error.code ? error.code : "generic";
  if (prefix && has(`${prefix}.${code}`)) return t(`${prefix}.${code}`);
  if (error && error.detail && has(`error.detail.${error.detail}`)) return t(`error.detail.${error.detail}`);
  if (has(`error.${code}`)) return t(`error.${code}`);
  return t("error.generic");
}
