// Translations and Paris-time formatting for the pages. The catalog is the JSON the server rendered into #i18n.

const source = document.getElementById("i18n");
const catalog = source ? JSON.parse(source.textContent || "{}") : {};

export const lang = document.documentElement.lang === "en" ? "en" : "fr";
export const locale = lang === "en" ? "en-GB" : "fr-FR";
export const TIME_ZONE = "Europe/Paris";

/** True when the catalog has this key. */
export function has(key) {
  return Object.prototype.hasOwnProperty.call(catalog, key);
}

/** The string for `key`, with `{name}` placeholders replaced from `vars`; the key itself when missing. */
export function t(key, vars = {}) {
  const text = has(key) ? catalog[key] : key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
}

const dateTimeFormat = new Intl.DateTimeFormat(locale, {
  timeZone: TIME_ZONE,
  weekday: "short",
  day: "numeric",
  month: "short",
  year: "numeric",
  hour: "2-digit",
  minute: "2-digit",
});
const timeFormat = new Intl.DateTimeFormat(locale, { timeZone: TIME_ZONE, hour: "2-digit", minute: "2-digit" });

function toDate(value) {
  const date = value instanceof Date ? value : new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** A date and time in Paris, e.g. "lun. 3 mars 2025, 14:30". */
export function formatDateTime(value) {
  const date = toDate(value);
  return date ? dateTimeFormat.format(date) : "";
}

/** A wall-clock time in Paris, e.g. "14:30". */
export function formatTime(value) {
  const date = toDate(value);
  return date ? timeFormat.format(date) : "";
}

/** An amount in cents as money, e.g. "25,00 €". */
export function formatAmount(cents, currency = "EUR") {
  return new Intl.NumberFormat(locale, { style: "currency", currency: currency || "EUR" }).format(cents / 100);
}

/** A duration in seconds, e.g. "12 min 05 s". */
export function formatDuration(seconds) {
  const total = Math.max(0, Math.round(Number(seconds) || 0));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const pad = (n) => String(n).padStart(2, "0");
  if (h > 0) return t("duration.hours", { h, m: pad(m) });
  if (m > 0) return t("duration.minutes", { m, s: pad(s) });
  return t("duration.seconds", { s });
}

/** The offset of Paris from UTC, in minutes, at the instant `ms` (milliseconds since the epoch). */
function parisOffsetMinutes(ms) {
  const parts = {};
  const fmt = new Intl.DateTimeFormat("en-US", {
    timeZone: TIME_ZONE,
    hourCycle: "h23",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
  for (const { type, value } of fmt.formatToParts(new Date(ms))) parts[type] = Number(value);
  const asUtc = Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute, parts.second);
  return Math.round((asUtc - Math.floor(ms / 1000) * 1000) / 60000);
}

/**
 * A `datetime-local` value ("2025-03-30T14:30") read as Paris wall-clock time, as ISO 8601 with its offset
 * ("2025-03-30T14:30:00+02:00"). Returns null for an empty or malformed value.
 */
export function parisLocalToIso(value) {
  const match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?/.exec(value || "");
  if (!match) return null;
  const [, y, mo, d, h, mi, s = "00"] = match;
  const wall = Date.UTC(+y, +mo - 1, +d, +h, +mi, +s);
  // The offsets in force a few hours either side; the first that maps back to this wall time wins (the earlier
  // instant when the clock goes back). In the spring gap neither does: keep the winter offset (moves forward).
  const candidates = [parisOffsetMinutes(wall - 3 * 3600000), parisOffsetMinutes(wall + 3 * 3600000)];
  const offset = candidates.find((o) => parisOffsetMinutes(wall - o * 60000) === o) ?? candidates[0];
  const sign = offset >= 0 ? "+" : "-";
  const abs = Math.abs(offset);
  const hh = String(Math.floor(abs / 60)).padStart(2, "0");
  const mm = String(abs % 60).padStart(2, "0");
  return `${y}-${mo}-${d}T${h}:${mi}:${s}${sign}${hh}:${mm}`;
}
