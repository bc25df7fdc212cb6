// The chat panel: messages in order, one's own marked; sending is possible only in the room.
// Owns #chat-log, #chat-form, #chat-input and #chat-send.
import { el } from "../dom.js";
import { formatTime, t } from "../i18n.js";

export class Chat {
  /**
   * @param {object} o
   * @param {(message: object) => boolean} o.send  sends a protocol frame; false when the socket is not open
   * @param {(peerId: string) => string} o.nameOf
   * @param {() => string|null} o.myPeerId
   * @param {(text: string) => void} o.notify
   */
  constructor({ send, nameOf, myPeerId, notify }) {
    this.log = document.getElementById("chat-log");
    this.form = document.getElementById("chat-form");
    this.input = document.getElementById("chat-input");
    this.button = document.getElementById("chat-send");
    this.send = send;
    this.nameOf = nameOf;
    this.myPeerId = myPeerId;
    this.notify = notify;
    this.form.addEventListener("submit", (event) => this.submit(event));
  }

  setEnabled(enabled) {
    this.input.disabled = !enabled;
    this.button.disabled = !enabled;
  }

  append(message) {
    const mine = message.from === this.myPeerId();
    const item = el(
      "li",
      { className: mine ? "chat__msg chat__msg--mine" : "chat__msg", "data-msg-id": message.msg_id },
      el(
        "p",
        { className: "chat__meta" },
        el("span", { className: "chat__who", text: this.nameOf(message.from) || "?" }),
        el("time", { className: "chat__time", datetime: message.ts, text: formatTime(message.ts || Date.now()) }),
      ),
      el("p", { className: "chat__text", text: message.text }),
    );
    this.log.append(item);
    this.log.scrollTop = this.log.scrollHeight;
  }

  submit(event) {
    event.preventDefault();
    const text = this.input.value.trim();
    if (!text) return;
    if (this.send({ type: "chat", text })) {
      this.input.value = "";
      this.input.focus();
    } else {
      this.notify(t("error.network"));
    }
  }
}
