// The call page, put together: the doctor's /c/{id} and the patient's or nurse's /j/{token}. It connects (media,
// then a ticket or the tab's resume token, then the socket), applies each protocol frame to the part of the page it
// concerns, and ends the call. The parts own their state and their piece of the page.
import { api, ApiError, errorText, setCsrfToken } from "../api.js";
import { t } from "../i18n.js";
import { Signaling } from "../signaling.js";
import { Chat } from "./chat.js";
import { DocumentsPanel } from "./documents.js";
import { JoinForm } from "./join.js";
import { Lobby } from "./lobby.js";
import { LocalMedia } from "./media.js";
import { EndBilling } from "./billing.js";
import { Outcome, confirmEnd } from "./outcome.js";
import { PrescriptionForm } from "./prescription.js";
import { RemotePeers } from "./remotes.js";
import { ResumeToken } from "./resume.js";
import { StatusBar } from "./status.js";

const CLOSED_STATUSES = new Set(["ended", "cancelled", "no_show"]);

export class CallPage {
  constructor(root) {
    const config = root.dataset;
    this.config = config;
    this.isDoctor = config.role === "doctor";
    this.consultationId = config.consultationId || null;
    this.signaling = null;
    this.finished = false;
    this.callUi = document.getElementById("call-ui");
    this.waiting = document.getElementById("waiting");
    const send = (message) => Boolean(this.signaling && this.signaling.send(message));
    this.status = new StatusBar(root);
    this.media = new LocalMedia();
    this.remotes = new RemotePeers({ isDoctor: this.isDoctor, send, localStream: () => this.media.stream });
    const notify = (text) => this.status.notify(text);
    this.lobby = new Lobby({ send, notify });
    this.chat = new Chat({
      send,
      notify,
      nameOf: (peerId) => this.remotes.nameOf(peerId),
      myPeerId: () => this.remotes.myPeerId,
    });
    this.outcome = new Outcome();
    const consultationId = () => this.consultationId;
    this.documents = new DocumentsPanel({ consultationId, notify });
    this.prescription = new PrescriptionForm({ consultationId, notify, onIssued: (d) => this.documents.add(d) });
    this.resume = new ResumeToken(() => this.consultationId);
    this.join = new JoinForm({ token: config.token, doctorName: config.doctorName || "", onGrant: (g) => this.granted(g) });
  }

  start() {
    document.getElementById("hangup").addEventListener("click", () => this.hangUp());
    this.outcome.rejoin.addEventListener("click", () => this.connect());
    this.endBilling = this.isDoctor ? new EndBilling(this.consultationId) : null;
    confirmEnd(
      () => this.endForEveryone(),
      () => (this.endBilling ? this.endBilling.load() : Promise.resolve()),
    );
    window.addEventListener("pagehide", () => this.signaling && this.signaling.stop());
    if (this.isDoctor) {
      if (CLOSED_STATUSES.has(this.config.status)) this.finishEnded();
      else this.connect(null, { resume: this.resume.kept() });
    } else if (this.join.present && this.resume.kept()) {
      this.join.hide(); // this tab was in the consultation: back in without the form
      this.connect(null, { resume: this.resume.kept() });
    }
  }

  setState(state) {
    this.status.set(state);
    this.chat.setEnabled(state === "connected");
    this.remotes.setConnected(state === "connected");
  }

  // --- connecting --------------------------------------------------------------------------------------------

  /** Media first (the permission prompt may take a while), then a ticket (or the tab's resume token), the socket. */
  async connect(ticket = null, { resume = null } = {}) {
    this.finished = false;
    this.outcome.hide();
    this.callUi.hidden = false;
    this.setState("connecting");
    await this.media.start();
    if (resume) return this.open(null, resume);
    let fresh = ticket;
    try {
      if (!fresh) fresh = await this.freshTicket();
    } catch (error) {
      if (error instanceof ApiError && error.code === "ended") return this.finishEnded();
      if (error instanceof ApiError && error.status === 401 && this.isDoctor) return window.location.assign("/login");
      return this.finish("left", t("reconnect.failed"), errorText(error), { rejoin: true });
    }
    return this.open(fresh, null);
  }

  open(ticket, resume) {
    if (this.signaling) this.signaling.stop();
    this.signaling = new Signaling({
      credentials: () => this.freshTicket(),
      onMessage: (message) => this.onMessage(message),
      onStatus: (status, error) => this.onStatus(status, error),
      room: () => this.consultationId,
    });
    this.signaling.connect(ticket, { resume });
  }

  /** A fresh ticket for this consultation (session cookie for the doctor, participant cookie otherwise). */
  async freshTicket() {
    const path = `/api/consultations/${encodeURIComponent(this.consultationId)}/ticket`;
    return (await api(path, { method: "POST" })).ticket;
  }

  async granted(grant) {
    setCsrfToken(grant.csrf_token);
    this.consultationId = grant.consultation_id;
    await this.connect(grant.ticket);
  }

  // --- frames ------------------------------------------------------------------------------------------------

  async onMessage(message) {
    switch (message.type) {
      case "welcome":
        this.consultationId = message.consultation_id || this.consultationId;
        this.resume.keep(message.resume);
        this.remotes.welcome(message);
        if (message.state === "admitted") this.enterRoom(message.peers);
        else this.showWaiting(true);
        break;
      case "waiting":
        this.documents.close();
        this.remotes.dropAll(); // sent back to the waiting room: media stops until the doctor admits again
        this.showWaiting(false);
        break;
      case "admitted":
        this.enterRoom(message.peers);
        break;
      case "lobby":
        this.lobby.render(message.waiting);
        break;
      case "peer-joined":
        this.remotes.remember(message.peer);
        this.status.notify(t("call.peer_joined", { name: this.remotes.nameOf(message.peer.peer_id) }));
        break;
      case "peer-left": {
        const name = this.remotes.nameOf(message.peer_id);
        this.remotes.drop(message.peer_id);
        if (name) this.status.notify(t("call.peer_left", { name }));
        break;
      }
      case "offer":
        await this.remotes.offer(message.from, message.sdp);
        break;
      case "answer":
        await this.remotes.answer(message.from, message.sdp);
        break;
      case "candidate":
        await this.remotes.candidate(message.from, message.candidate);
        break;
      case "chat":
        this.chat.append(message);
        break;
      case "document":
        this.documents.add(message.document);
        break;
      case "ended":
        await this.finishEnded();
        break;
      case "denied":
        this.resume.forget();
        this.finish("left", t("denied.title"), t("denied.text"));
        break;
      case "removed":
        this.removed(message.reason);
        break;
      case "error":
        this.onError(message);
        break;
      default:
        break; // pong, document, and anything newer than this page
    }
  }

  enterRoom(peers) {
    this.waiting.hidden = true;
    this.setState("connected");
    this.remotes.enter(peers);
    this.documents.open();
  }

  showWaiting(report) {
    this.waiting.hidden = false;
    this.setState("waiting");
    if (!report) return;
    // Tell the doctor what this device can do, so they see who is ready before admitting.
    const { hasVideo, hasAudio } = this.media.checks();
    if (this.signaling) this.signaling.send({ type: "ready", checks: { camera: hasVideo, microphone: hasAudio } });
  }

  removed(reason) {
    this.resume.forget();
    if (reason === "replaced") this.finish("left", t("removed.title"), t("removed.replaced"), { rejoin: true });
    else if (reason === "link_revoked") this.finish("left", t("removed.title"), t("removed.link_revoked"));
    else this.finish("left", t("removed.title"), t("removed.text"));
  }

  onError(message) {
    if (message.code === "ended") {
      this.finishEnded();
      return;
    }
    console.warn("signaling error:", message.code, message.message);
    if (message.code !== "unauthorized") this.status.notify(errorText(message));
  }

  onStatus(status, error) {
    if (this.finished) return;
    if (status === "reconnecting") this.setState("reconnecting");
    else if (status === "failed") {
      if (error && error.code === "ended") this.finishEnded();
      else if (!this.isDoctor && this.join.present && error && error.status === 401) this.backToForm();
      else this.finish("left", t("reconnect.failed"), error ? errorText(error) : "", { rejoin: true });
    }
  }

  // --- the end -----------------------------------------------------------------------------------------------

  teardown() {
    this.documents.close();
    if (this.signaling) this.signaling.stop();
    this.signaling = null;
    this.remotes.dropAll();
    this.media.stop();
    this.waiting.hidden = true;
    this.lobby.render([]);
  }

  finish(state, title, text, { rejoin = false } = {}) {
    if (this.finished) return;
    this.finished = true;
    this.teardown();
    this.setState(state);
    this.callUi.hidden = true;
    this.outcome.show(title, text, { rejoin });
  }

  async finishEnded() {
    this.resume.forget();
    if (this.finished && this.status.state === "ended") return;
    this.finished = false;
    this.finish("ended", t("ended.title"), this.isDoctor ? "" : t("ended.patient_text"));
    if (this.isDoctor) await this.outcome.showBilling(this.consultationId);
  }

  /** This tab's participant cookie no longer works (the link was resent, or expired): the consent form again. */
  backToForm() {
    this.resume.forget();
    this.teardown();
    this.callUi.hidden = true;
    this.outcome.hide();
    this.join.show();
  }

  hangUp() {
    this.resume.forget();
    if (this.signaling) this.signaling.leave();
    this.signaling = null;
    this.finish("left", t("left.title"), t("left.text"), { rejoin: true });
  }

  /** Over HTTP, with the doctor's billing choice; "ended" also comes back to everyone over the socket. */
  async endForEveryone() {
    const body = this.endBilling ? this.endBilling.choice() : undefined;
    try {
      await api(`/api/consultations/${encodeURIComponent(this.consultationId)}/end`, { method: "POST", body });
      await this.finishEnded();
    } catch (error) {
      this.status.notify(errorText(error));
    }
  }
}
