// Protocol v1 client: one WebSocket, messages handled strictly in order, keep-alive pings, and reconnection.

const PING_MS = 20000;
const MAX_ATTEMPTS = 8;
/** After these the server closes the socket on purpose: no reconnection. */
const TERMINAL = new Set(["ended", "denied", "removed"]);

/**
 * A short key for the room (a hash, not the consultation id itself), sent as `/ws?room=`: a server running several
 * workers, or a proxy hashing on it, sends every socket of a room to the same process, so their frames never cross
 * between servers. Any stable string would do; the server only hashes it again.
 */
export function roomKey(consultationId) {
  let hash = 0x811c9dc5; // FNV-1a, 32 bits
  for (const char of consultationId) {
    hash = Math.imul(hash ^ char.codePointAt(0), 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, "0");
}

export function socketUrl(consultationId = null) {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const room = consultationId ? `?room=${roomKey(consultationId)}` : "";
  return `${scheme}://${window.location.host}/ws${room}`;
}

/**
 * Usage: `new Signaling({ credentials, onMessage, onStatus, room }).connect(ticket)`.
 * - `room()` gives the consultation id when it is known, for the socket's room key (`socketUrl`).
 * - After a dropped connection the client resumes with the resume token of its last welcome (same peer id,
 *   its peers see nothing). If that is refused (the grace period is over), `credentials()` resolves with a
 *   fresh ticket for a new hello.
 * - `onMessage(msg)` may be async: the next message waits for it (addIceCandidate never overtakes
 *   setRemoteDescription).
 * - `onStatus(status, error)`: "open" (welcome received), "reconnecting", "failed" (gave up, or the
 *   credentials call failed for good: `error`), "closed" (closed on purpose).
 */
export class Signaling {
  constructor({ credentials, onMessage, onStatus, room = () => null }) {
    this.credentials = credentials;
    this.room = room;
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.ws = null;
    this.queue = Promise.resolve();
    this.expectClose = false;
    this.stopped = false;
    this.attempts = 0;
    this.pingTimer = null;
    this.retryTimer = null;
    this.resumeToken = null;
    this.reconnectAfterMs = null;
  }

  /** Open a socket and say hello with this ticket, or resume with a resume token. */
  connect(ticket, { resume = null } = {}) {
    if (this.stopped) return;
    const ws = new WebSocket(socketUrl(this.room()));
    this.ws = ws;
    this.expectClose = false;
    const hello = resume ? { type: "hello", v: 1, resume } : { type: "hello", v: 1, ticket };
    ws.addEventListener("open", () => this.rawSend(ws, hello));
    ws.addEventListener("message", (event) => this.receive(ws, event));
    ws.addEventListener("close", (event) => this.closed(ws, event));
  }

  get open() {
    return Boolean(this.ws && this.ws.readyState === WebSocket.OPEN);
  }

  /** Send a frame; false when the socket is not open (the caller may tell the user). */
  send(message) {
    return this.rawSend(this.ws, message);
  }

  rawSend(ws, message) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(message));
    return true;
  }

  /** Leave for good: send `leave`, then close without reconnecting. */
  leave() {
    this.send({ type: "leave" });
    this.stop();
  }

  /** Close on purpose (no reconnection). */
  stop() {
    this.stopped = true;
    this.expectClose = true;
    clearTimeout(this.retryTimer);
    this.stopPing();
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000, "bye");
  }

  receive(ws, event) {
    if (ws !== this.ws) return;
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (!message || typeof message.type !== "string") return;
    if (TERMINAL.has(message.type)) this.expectClose = true;
    if (message.type === "reconnect") this.reconnectAfterMs = Number(message.after_ms) || 1000;
    if (message.type === "error" && message.code === "unauthorized") this.resumeToken = null; // start afresh
    if (message.type === "welcome") {
      this.resumeToken = message.resume || null;
      this.attempts = 0;
      this.startPing();
      this.onStatus("open");
    }
    this.queue = this.queue
      .then(() => this.onMessage(message))
      .catch((error) => console.error("signaling: handling", message.type, "failed:", error));
  }

  closed(ws, event) {
    if (ws !== this.ws) return;
    this.stopPing();
    this.ws = null;
    if (this.expectClose || this.stopped) {
      this.stopped = true;
      this.queue = this.queue.then(() => this.onStatus("closed"));
      return;
    }
    console.warn("signaling: socket closed", event.code, event.reason);
    this.scheduleReconnect();
  }

  scheduleReconnect() {
    if (this.stopped) return;
    this.attempts += 1;
    if (this.attempts > MAX_ATTEMPTS) {
      this.stopped = true;
      this.onStatus("failed", null);
      return;
    }
    this.onStatus("reconnecting");
    const base = this.reconnectAfterMs ?? Math.min(500 * 2 ** (this.attempts - 1), 8000);
    this.reconnectAfterMs = null;
    const delay = base * (0.8 + Math.random() * 0.4);
    this.retryTimer = setTimeout(() => this.reconnect(), delay);
  }

  async reconnect() {
    if (this.stopped) return;
    if (this.resumeToken) {
      this.connect(null, { resume: this.resumeToken });
      return;
    }
    let ticket;
    try {
      ticket = await this.credentials();
    } catch (error) {
      // A network failure or a busy server is worth another try; a refusal (ended, unauthorized) is final.
      if (error && (error.code === "network" || error.status === 0 || error.status >= 500 || error.status === 429)) {
        this.scheduleReconnect();
      } else {
        this.stopped = true;
        this.onStatus("failed", error);
      }
      return;
    }
    this.connect(ticket);
  }

  startPing() {
    this.stopPing();
    this.pingTimer = setInterval(() => this.send({ type: "ping" }), PING_MS);
  }

  stopPing() {
    clearInterval(this.pingTimer);
    this.pingTimer = null;
  }
}
