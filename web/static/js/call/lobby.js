// The doctor's waiting room: who waits, what their device can do, and the admit and deny buttons.
// Owns #lobby, #lobby-list, #lobby-empty and #lobby-count (absent from a patient's page).
import { el } from "../dom.js";
import { t } from "../i18n.js";

function nameOf(peer) {
  const person = peer.name || t(`role.${peer.role}`);
  // The same link opened elsewhere (or forwarded): the doctor chooses which device is in the call.
  return peer.second_device ? t("lobby.second_device", { name: person }) : person;
}

function readyText(ready) {
  if (!ready) return "";
  const mark = (ok) => (ok ? "✓" : "✗");
  return `${t("lobby.camera")} ${mark(ready.camera)} · ${t("lobby.microphone")} ${mark(ready.microphone)}`;
}

function button(kind, peer, name) {
  return el("button", {
    type: "button",
    className: kind === "admit" ? "btn btn--primary" : "btn btn--secondary",
    "data-testid": kind,
    "data-peer-id": peer.peer_id,
    "aria-label": t(`lobby.${kind}_label`, { name }),
    text: t(`lobby.${kind}`),
  });
}

function entry(peer) {
  const name = nameOf(peer);
  const hint = peer.second_device
    ? el("span", { className: "lobby__hint", "data-testid": "second-device", text: t("lobby.second_device_hint") })
    : null;
  return el(
    "li",
    { className: "lobby__item", "data-testid": "lobby-entry", "data-peer-id": peer.peer_id },
    el(
      "span",
      { className: "lobby__who" },
      el("strong", { text: name, "data-testid": "lobby-name" }),
      el("span", { className: "lobby__role", text: t(`role.${peer.role}`) }),
      hint,
      el("span", { className: "lobby__ready", "data-testid": "lobby-ready", text: readyText(peer.ready) }),
    ),
    el("span", { className: "lobby__actions" }, button("admit", peer, name), button("deny", peer, name)),
  );
}

export class Lobby {
  /**
   * @param {object} o
   * @param {(message: object) => boolean} o.send  sends a protocol frame
   * @param {(text: string) => void} o.notify
   */
  constructor({ send, notify }) {
    this.section = document.getElementById("lobby");
    this.list = document.getElementById("lobby-list");
    this.empty = document.getElementById("lobby-empty");
    this.count = document.getElementById("lobby-count");
    this.send = send;
    this.notify = notify;
    this.seen = new Set();
    if (this.list) this.list.addEventListener("click", (event) => this.click(event));
  }

  render(waiting) {
    if (!this.list) return;
    const items = waiting || [];
    this.list.replaceChildren(...items.map(entry));
    this.empty.hidden = items.length > 0;
    this.count.hidden = items.length === 0;
    this.count.textContent = String(items.length);
    this.section.classList.toggle("lobby--busy", items.length > 0);
    document.title = (items.length ? `(${items.length}) ` : "") + t("call.page_title");
    for (const peer of items) {
      if (!this.seen.has(peer.peer_id)) this.notify(t("lobby.arrived", { name: nameOf(peer) }));
      this.seen.add(peer.peer_id);
    }
  }

  click(event) {
    const target = event.target.closest("button[data-peer-id]");
    if (!target) return;
    const type = target.dataset.testid === "admit" ? "admit" : "deny";
    if (this.send({ type, peer_id: target.dataset.peerId })) {
      for (const b of target.closest("li").querySelectorAll("button")) b.disabled = true;
    }
  }
}
