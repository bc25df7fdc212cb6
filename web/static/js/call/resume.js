// The resume token of this tab's last welcome, kept in sessionStorage (one tab's alone): a reload (a frozen page,
// a phone that killed the tab) comes back into the call at once, still admitted; another tab or device has none
// and goes through the waiting room.

export class ResumeToken {
  constructor(consultationId) {
    this.consultationId = consultationId;
  }

  get key() {
    return this.consultationId() ? `teleconsult.resume.${this.consultationId()}` : null;
  }

  keep(token) {
    this.attempt(() => this.key && token && sessionStorage.setItem(this.key, token));
  }

  forget() {
    this.attempt(() => this.key && sessionStorage.removeItem(this.key));
  }

  kept() {
    return this.attempt(() => (this.key ? sessionStorage.getItem(this.key) : null)) || null;
  }

  attempt(action) {
    try {
      return action();
    } catch {
      return null; // storage refused (private mode): a reload then goes through the waiting room
    }
  }
}
