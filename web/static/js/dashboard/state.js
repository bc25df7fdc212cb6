// What the dashboard shows beside the server's data, per consultation row; kept across refreshes, which rebuild
// only the rows whose data or state changed.

export class RowStates {
  constructor() {
    this.confirming = new Set(); // consultation ids whose cancel confirmation is open
    this.busy = new Set(); // "<id>|cancel", "<id>|resend|<participant id>" or "<id>|fix|<participant id>" while it runs
    this.resent = new Map(); // id -> {participantId, name, email, fixed, link, copied}
    this.fixing = new Map(); // id -> {participantId, error}: the open address form of that row (one at a time)
    this.errors = new Map(); // id -> text
    this.notices = new Map(); // id -> text
    // The open address forms, kept as nodes: a row rebuilt by a refresh takes the same form back, so what the
    // doctor is typing (and where the caret is) survives.
    this.fixForms = new Map(); // id -> {participantId, form}
    this.pendingFocus = null; // {id, key}: where focus goes after the next render
  }

  /** A key that changes whenever what the row shows beside its data changes. */
  key(id) {
    return JSON.stringify([
      this.confirming.has(id),
      [...this.busy].filter((key) => key.startsWith(`${id}|`)),
      this.resent.get(id) || null,
      this.fixing.get(id) || null,
      this.errors.get(id) || null,
      this.notices.get(id) || null,
    ]);
  }

  focusNext(id, key) {
    this.pendingFocus = { id, key };
  }
}
