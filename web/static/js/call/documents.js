// The documents panel: what the consultation's participants exchanged (listed, then each new one as its
// `document` frame arrives), a download link for each, and sending a file or a photo with a progress bar.
// Owns #documents-list, #documents-empty, #upload, #upload-photo, #upload-progress and #upload-status.
import { ApiError, api, csrfToken, errorText } from "../api.js";
import { el } from "../dom.js";
import { t } from "../i18n.js";

function sizeText(bytes) {
  if (bytes < 1024) return `${bytes} o`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} Kio`;
  return `${(bytes / 1024 / 1024).toFixed(1)} Mio`;
}

export class DocumentsPanel {
  /** @param {{consultationId: () => string|null, notify: (text: string) => void}} o */
  constructor({ consultationId, notify }) {
    this.list = document.getElementById("documents-list");
    this.empty = document.getElementById("documents-empty");
    this.inputs = [document.getElementById("upload"), document.getElementById("upload-photo")];
    this.progress = document.getElementById("upload-progress");
    this.status = document.getElementById("upload-status");
    this.consultationId = consultationId;
    this.notify = notify;
    this.shown = new Set();
    for (const input of this.inputs) input.addEventListener("change", () => this.send(input));
  }

  /** In the room: sending is possible, and the documents so far are listed. */
  async open() {
    for (const input of this.inputs) input.disabled = false;
    try {
      const body = await api(`/api/consultations/${encodeURIComponent(this.consultationId())}/documents`);
      for (const document of (body && body.items) || []) this.add(document);
    } catch (error) {
      console.warn("documents:", error);
    }
  }

  close() {
    for (const input of this.inputs) input.disabled = true;
  }

  /** A document of the consultation: from the list, an upload's answer, or a `document` frame. */
  add(document) {
    if (!document || this.shown.has(document.id)) return;
    this.shown.add(document.id);
    const href = `/api/documents/${encodeURIComponent(document.id)}`;
    const prescription = document.kind === "prescription";
    const item = el(
      "li",
      { className: "documents__item", "data-testid": "document", "data-id": document.id, "data-kind": document.kind },
      el("a", {
        href,
        download: document.name,
        "data-testid": "document-download",
        "aria-label": t("documents.download", { name: document.name }),
        text: prescription ? `${t("documents.prescription")} — ${document.name}` : document.name,
      }),
      el("span", { className: "documents__size", text: ` · ${sizeText(document.size)}` }),
    );
    if (prescription) {
      item.append(" · ", el("a", { href: `${href}/signed`, "data-testid": "document-signed", text: t("documents.signed") }));
    }
    this.list.append(item);
    this.empty.hidden = true;
  }

  /** Send the chosen file with a progress bar (XMLHttpRequest: fetch cannot report an upload's progress). */
  send(input) {
    const file = input.files && input.files[0];
    if (!file) return;
    const form = new FormData();
    form.append("file", file, file.name);
    const request = new XMLHttpRequest();
    request.open("POST", `/api/consultations/${encodeURIComponent(this.consultationId())}/documents`);
    request.setRequestHeader("X-CSRF-Token", csrfToken());
    request.setRequestHeader("Accept", "application/json");
    this.progress.hidden = false;
    this.progress.value = 0;
    this.progress.dataset.state = "sending";
    this.status.textContent = t("documents.sending", { name: file.name });
    for (const each of this.inputs) each.disabled = true;
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) this.progress.value = Math.round((100 * event.loaded) / event.total);
    });
    request.addEventListener("loadend", () => this.sent(request, file, input));
    request.send(form);
  }

  sent(request, file, input) {
    for (const each of this.inputs) each.disabled = false;
    input.value = "";
    let body = null;
    try {
      body = JSON.parse(request.responseText || "null");
    } catch {
      body = null;
    }
    if (request.status === 201 && body) {
      this.progress.value = 100;
      this.progress.dataset.state = "done";
      this.status.textContent = t("documents.sent", { name: body.name });
      this.add(body);
      return;
    }
    this.progress.dataset.state = "failed";
    this.progress.hidden = true;
    const error = new ApiError(request.status, (body && body.error) || "network", body && body.message, null, {
      detail: body && body.detail,
    });
    this.status.textContent = errorText(error);
    this.notify(errorText(error));
  }
}
