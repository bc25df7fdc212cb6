// The call's status line and its passing notices. Owns #call-status, #call-status-text and #call-notice.
import { t } from "../i18n.js";

const NOTICE_MS = 6000;

export class StatusBar {
  constructor(root) {
    this.root = root;
    this.bar = document.querySelector('[data-testid="call-status"]');
    this.text = document.getElementById("call-status-text");
    this.notice = document.getElementById("call-notice");
    this.noticeTimer = null;
    this.state = "connecting";
  }

  /** connecting | waiting | connected | reconnecting | left | ended */
  set(state) {
    this.state = state;
    this.root.dataset.state = state;
    this.bar.hidden = false;
    this.bar.dataset.state = state;
    this.text.textContent = t(`call.state.${state}`);
  }

  /** A sentence shown for a few seconds (someone arrived, left, an error). */
  notify(text) {
    this.notice.textContent = text;
    this.notice.hidden = false;
    clearTimeout(this.noticeTimer);
    this.noticeTimer = setTimeout(() => {
      this.notice.hidden = true;
    }, NOTICE_MS);
  }
}
