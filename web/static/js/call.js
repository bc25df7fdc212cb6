// The call page: the doctor's /c/{id} and the patient's or nurse's /j/{token}.
// Media, one PeerLink per remote peer, the waiting room, the lobby, chat and the end of the consultation.
import { api, ApiError, errorText, setCsrfToken } from "./api.js";
import { el } from "./dom.js";
import { formatAmount, formatDuration, formatTime, t } from "./i18n.js";
import { PeerLink } from "./peers.js";
import { Signaling } from "./signaling.js";

const $ = (id) => document.getElementById(id);

const root = $("call-root");
const config = root.dataset;
const role = config.role;
const isDoctor = role === "doctor";
const doctorName = config.doctorName || "";

const ui = {
  status: document.querySelector('[data-testid="call-status"]'),
  statusText: $("call-status-text"),
  prejoin: $("prejoin"),
  joinForm: $("join-form"),
  consent: $("consent"),
  joinError: $("join-error"),
  callUi: $("call-ui"),
  waiting: $("waiting"),
  stageHint: $("stage-hint"),
  remotes: $("remotes"),
  localVideo: $("local-video"),
  selfOff: $("self-off"),
  mediaNotice: $("media-notice"),
  callNotice: $("call-notice"),
  mute: $("mute"),
  camera: $("camera"),
  enableSound: $("enable-sound"),
  hangup: $("hangup"),
  end: $("end"),
  endDialog: $("end-dialog"),
  lobby: $("lobby"),
  lobbyList: $("lobby-list"),
  lobbyEmpty: $("lobby-empty"),
  lobbyCount: $("lobby-count"),
  chatLog: $("chat-log"),
  chatForm: $("chat-form"),
  chatInput: $("chat-input"),
  chatSend: $("chat-send"),
  outcome: $("outcome"),
  outcomeTitle: $("outcome-title"),
  outcomeText: $("outcome-text"),
  billing: $("billing"),
  rejoin: $("rejoin"),
};

const call = {
  consultationId: config.consultationId || null,
  state: "connecting",
  signaling: null,
  peerId: null,
  polite: isDoctor,
  iceServers: [],
  peers: new Map(), // peer_id -> {peer_id, role, name}
  links: new Map(), // peer_id -> PeerLink
  tiles: new Map(), // peer_id -> {figure, video, overlay, fallback}
  localStream: null,
  micOn: true,
  camOn: true,
  lobbySeen: new Set(),
  finished: false,
};

// --- status and notices ------------------------------------------------------------------------------------

function setState(state) {
  call.state = state;
  root.dataset.state = state;
  ui.status.hidden = false;
  ui.status.dataset.state = state;
  ui.statusText.textContent = t(`call.state.${state}`);
  const inRoom = state === "connected";
  ui.chatInput.disabled = !inRoom;
  ui.chatSend.disabled = !inRoom;
  updateStageHint();
}

let noticeTimer = null;
function notify(text) {
  ui.callNotice.textContent = text;
  ui.callNotice.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => {
    ui.callNotice.hidden = true;
  }, 6000);
}

function updateStageHint() {
  const alone = call.state === "connected" && call.tiles.size === 0;
  ui.stageHint.hidden = !alone;
  if (alone) ui.stageHint.textContent = isDoctor ? t("call.alone_doctor") : t("call.alone");
  ui.remotes.dataset.count = String(call.tiles.size);
}

function peerName(peerId) {
  if (peerId === call.peerId) return t("call.you");
  const peer = call.peers.get(peerId);
  return peer ? peer.name || t(`role.${peer.role}`) : "";
}

// --- local media -------------------------------------------------------------------------------------------

async function startMedia() {
  if (call.localStream) return call.localStream;
  const video = { width: { ideal: 1280 }, height: { ideal: 720 }, facingMode: "user" };
  let stream = null;
  if (navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
    for (const constraints of [{ audio: true, video }, { audio: true }, { video }]) {
      try {
        stream = await navigator.mediaDevices.getUserMedia(constraints);
        break;
      } catch (error) {
        console.warn("media: getUserMedia", JSON.stringify(constraints), "failed:", error.name);
      }
    }
  }
  call.localStream = stream;
  const hasAudio = Boolean(stream && stream.getAudioTracks().length);
  const hasVideo = Boolean(stream && stream.getVideoTracks().length);
  let notice = "";
  if (!hasAudio && !hasVideo) notice = t("media.none");
  else if (!hasVideo) notice = t("media.no_video");
  else if (!hasAudio) notice = t("media.no_audio");
  ui.mediaNotice.textContent = notice;
  ui.mediaNotice.hidden = !notice;
  ui.mute.disabled = !hasAudio;
  ui.camera.disabled = !hasVideo;
  if (stream) {
    for (const track of stream.getAudioTracks()) track.enabled = call.micOn;
    for (const track of stream.getVideoTracks()) track.enabled = call.camOn;
  }
  ui.localVideo.srcObject = hasVideo ? stream : null;
  ui.selfOff.textContent = hasVideo ? t("media.camera_off") : t("media.no_camera");
  ui.selfOff.hidden = hasVideo && call.camOn;
  if (hasVideo) ui.localVideo.play().catch(() => {});
  return stream;
}

function stopMedia() {
  if (call.localStream) for (const track of call.localStream.getTracks()) track.stop();
  call.localStream = null;
  ui.localVideo.srcObject = null;
}

function toggleMic() {
  call.micOn = !call.micOn;
  if (call.localStream) for (const track of call.localStream.getAudioTracks()) track.enabled = call.micOn;
  ui.mute.setAttribute("aria-pressed", String(!call.micOn));
}

function toggleCamera() {
  call.camOn = !call.camOn;
  if (call.localStream) for (const track of call.localStream.getVideoTracks()) track.enabled = call.camOn;
  ui.camera.setAttribute("aria-pressed", String(!call.camOn));
  ui.selfOff.hidden = call.camOn;
}

// --- remote peers ------------------------------------------------------------------------------------------

function tileFor(peerId) {
  let tile = call.tiles.get(peerId);
  if (tile) return tile;
  const name = peerName(peerId);
  const video = el("video", {
    className: "tile__video",
    autoplay: true,
    playsinline: true,
    "data-testid": "remote-video",
    "data-peer-id": peerId,
    "aria-label": t("call.remote_label", { name }),
  });
  video.autoplay = true;
  video.playsInline = true;
  const overlay = el("span", { className: "tile__overlay", text: t("call.peer_connecting") });
  const caption = el("figcaption", { className: "tile__label", text: name });
  const figure = el("figure", { className: "tile", "data-peer-id": peerId }, video, overlay, caption);
  tile = { figure, video, overlay, caption, fallback: null };
  call.tiles.set(peerId, tile);
  ui.remotes.append(figure);
  updateStageHint();
  return tile;
}

function removeTile(peerId) {
  const tile = call.tiles.get(peerId);
  if (!tile) return;
  tile.video.srcObject = null;
  tile.figure.remove();
  call.tiles.delete(peerId);
  updateStageHint();
}

function playRemote(video) {
  video.play().catch((error) => {
    if (error.name !== "NotAllowedError") return;
    // No user gesture yet for sound: play muted, and offer a button that turns the sound on.
    video.muted = true;
    video.play().catch(() => {});
    ui.enableSound.hidden = false;
  });
}

function attachTrack(peerId, event) {
  const tile = tileFor(peerId);
  let stream = event.streams && event.streams[0];
  if (!stream) {
    tile.fallback = tile.fallback || new MediaStream();
    tile.fallback.addTrack(event.track);
    stream = tile.fallback;
  }
  if (tile.video.srcObject !== stream) tile.video.srcObject = stream;
  playRemote(tile.video);
  event.track.addEventListener("unmute", () => playRemote(tile.video));
}

function showPeerState(peerId, state) {
  const tile = call.tiles.get(peerId);
  if (!tile) return;
  tile.figure.dataset.state = state;
  if (state === "connected") tile.overlay.hidden = true;
  else if (state === "disconnected" || state === "failed") {
    tile.overlay.textContent = t("call.peer_trouble");
    tile.overlay.hidden = false;
  }
}

function linkTo(peerId) {
  let link = call.links.get(peerId);
  if (link) return link;
  tileFor(peerId);
  const known = call.peers.get(peerId);
  link = new PeerLink({
    peerId,
    // The server says, per peer, which side of perfect negotiation we are; the welcome flag is the fallback.
    polite: known && typeof known.polite === "boolean" ? known.polite : call.polite,
    iceServers: call.iceServers,
    localStream: call.localStream,
    send: (message) => call.signaling && call.signaling.send(message),
    onTrack: (event) => attachTrack(peerId, event),
    onState: (state) => showPeerState(peerId, state),
  });
  call.links.set(peerId, link);
  return link;
}

function dropPeer(peerId) {
  const link = call.links.get(peerId);
  if (link) link.close();
  call.links.delete(peerId);
  removeTile(peerId);
}

function dropAllPeers() {
  for (const peerId of [...call.links.keys(), ...call.tiles.keys()]) dropPeer(peerId);
}

function remember(peer) {
  if (peer && peer.peer_id) call.peers.set(peer.peer_id, peer);
}

/** We are in the room: offer to everyone already there (we are the later one). */
function enterRoom(peers) {
  ui.waiting.hidden = true;
  setState("connected");
  for (const peer of peers || []) {
    remember(peer);
    if (!call.links.has(peer.peer_id)) linkTo(peer.peer_id).start();
  }
}

/** Tell the doctor what this device can do, so they see who is ready before admitting. */
function reportReady() {
  const stream = call.localStream;
  const checks = {
    camera: Boolean(stream && stream.getVideoTracks().length),
    microphone: Boolean(stream && stream.getAudioTracks().length),
  };
  if (call.signaling) call.signaling.send({ type: "ready", checks });
}

function readyText(ready) {
  if (!ready) return "";
  const mark = (ok) => (ok ? "✓" : "✗");
  return `${t("lobby.camera")} ${mark(ready.camera)} · ${t("lobby.microphone")} ${mark(ready.microphone)}`;
}

function showWaiting() {
  ui.waiting.hidden = false;
  setState("waiting");
}

// --- the lobby (doctor) ------------------------------------------------------------------------------------

function renderLobby(waiting) {
  if (!ui.lobbyList) return;
  const items = waiting || [];
  ui.lobbyList.replaceChildren(
    ...items.map((peer) => {
      const person = peer.name || t(`role.${peer.role}`);
      // The same link opened elsewhere (or forwarded): the doctor chooses which device is in the call.
      const name = peer.second_device ? t("lobby.second_device", { name: person }) : person;
      const admit = el("button", {
        type: "button",
        className: "btn btn--primary",
        "data-testid": "admit",
        "data-peer-id": peer.peer_id,
        "aria-label": t("lobby.admit_label", { name }),
        text: t("lobby.admit"),
      });
      const deny = el("button", {
        type: "button",
        className: "btn btn--secondary",
        "data-testid": "deny",
        "data-peer-id": peer.peer_id,
        "aria-label": t("lobby.deny_label", { name }),
        text: t("lobby.deny"),
      });
      return el(
        "li",
        { className: "lobby__item", "data-testid": "lobby-entry", "data-peer-id": peer.peer_id },
        el(
          "span",
          { className: "lobby__who" },
          el("strong", { text: name, "data-testid": "lobby-name" }),
          el("span", { className: "lobby__role", text: t(`role.${peer.role}`) }),
          peer.second_device
            ? el("span", { className: "lobby__hint", "data-testid": "second-device", text: t("lobby.second_device_hint") })
            : null,
          el("span", { className: "lobby__ready", "data-testid": "lobby-ready", text: readyText(peer.ready) }),
        ),
        el("span", { className: "lobby__actions" }, admit, deny),
      );
    }),
  );
  ui.lobbyEmpty.hidden = items.length > 0;
  ui.lobbyCount.hidden = items.length === 0;
  ui.lobbyCount.textContent = String(items.length);
  ui.lobby.classList.toggle("lobby--busy", items.length > 0);
  document.title = (items.length ? `(${items.length}) ` : "") + t("call.page_title");
  for (const peer of items) {
    const person = peer.name || t(`role.${peer.role}`);
    const name = peer.second_device ? t("lobby.second_device", { name: person }) : person;
    if (!call.lobbySeen.has(peer.peer_id)) notify(t("lobby.arrived", { name }));
    call.lobbySeen.add(peer.peer_id);
  }
}

function onLobbyClick(event) {
  const button = event.target.closest("button[data-peer-id]");
  if (!button) return;
  const type = button.dataset.testid === "admit" ? "admit" : "deny";
  if (call.signaling && call.signaling.send({ type, peer_id: button.dataset.peerId })) {
    for (const b of button.closest("li").querySelectorAll("button")) b.disabled = true;
  }
}

// --- chat --------------------------------------------------------------------------------------------------

function appendChat(message) {
  const mine = message.from === call.peerId;
  const item = el(
    "li",
    { className: mine ? "chat__msg chat__msg--mine" : "chat__msg", "data-msg-id": message.msg_id },
    el(
      "p",
      { className: "chat__meta" },
      el("span", { className: "chat__who", text: peerName(message.from) || "?" }),
      el("time", { className: "chat__time", datetime: message.ts, text: formatTime(message.ts || Date.now()) }),
    ),
    el("p", { className: "chat__text", text: message.text }),
  );
  ui.chatLog.append(item);
  ui.chatLog.scrollTop = ui.chatLog.scrollHeight;
}

function sendChat(event) {
  event.preventDefault();
  const text = ui.chatInput.value.trim();
  if (!text || !call.signaling) return;
  if (call.signaling.send({ type: "chat", text })) {
    ui.chatInput.value = "";
    ui.chatInput.focus();
  } else {
    notify(t("error.network"));
  }
}

// --- signaling -------------------------------------------------------------------------------------------

/** A fresh ticket for this consultation (session cookie for the doctor, participant cookie otherwise). */
async function freshTicket() {
  const body = await api(`/api/consultations/${encodeURIComponent(call.consultationId)}/ticket`, { method: "POST" });
  return body.ticket;
}

async function onMessage(message) {
  switch (message.type) {
    case "welcome":
      if (call.peerId && call.peerId !== message.peer_id) dropAllPeers(); // a new seat: start over
      call.peerId = message.peer_id;
      call.consultationId = message.consultation_id || call.consultationId;
      keepResume(message.resume);
      call.polite = Boolean(message.polite);
      call.iceServers = Array.isArray(message.ice_servers) ? message.ice_servers : [];
      call.consultationId = message.consultation_id || call.consultationId;
      for (const peer of message.peers || []) remember(peer);
      if (message.state === "admitted") enterRoom(message.peers);
      else {
        showWaiting();
        reportReady();
      }
      break;
    case "waiting":
      dropAllPeers(); // sent back to the waiting room: media stops until the doctor admits again
      showWaiting();
      break;
    case "admitted":
      enterRoom(message.peers);
      break;
    case "lobby":
      renderLobby(message.waiting);
      break;
    case "peer-joined":
      remember(message.peer);
      notify(t("call.peer_joined", { name: peerName(message.peer.peer_id) }));
      break;
    case "peer-left": {
      const name = peerName(message.peer_id);
      dropPeer(message.peer_id);
      if (name) notify(t("call.peer_left", { name }));
      break;
    }
    case "offer": {
      // An offer from another peer connection than the one we know (the peer reloaded its page and resumed):
      // the old connection is dead, start a new one.
      const known = call.links.get(message.from);
      if (known && known.fromAnotherConnection(message.sdp)) dropPeer(message.from);
      await linkTo(message.from).receiveDescription({ type: "offer", sdp: message.sdp });
      break;
    }
    case "answer": {
      const link = call.links.get(message.from);
      if (link) await link.receiveDescription({ type: "answer", sdp: message.sdp });
      break;
    }
    case "candidate": {
      const link = call.links.get(message.from);
      if (link) await link.receiveCandidate(message.candidate);
      break;
    }
    case "chat":
      appendChat(message);
      break;
    case "ended":
      await finishEnded();
      break;
    case "denied":
      forgetResume();
      finish("left", t("denied.title"), t("denied.text"));
      break;
    case "removed":
      forgetResume();
      if (message.reason === "replaced") finish("left", t("removed.title"), t("removed.replaced"), { rejoin: true });
      else if (message.reason === "link_revoked") finish("left", t("removed.title"), t("removed.link_revoked"));
      else finish("left", t("removed.title"), t("removed.text"));
      break;
    case "error":
      onError(message);
      break;
    default:
      break; // pong, document, and anything newer than this page
  }
}

function onError(message) {
  if (message.code === "ended") {
    finishEnded();
    return;
  }
  console.warn("signaling error:", message.code, message.message);
  if (message.code !== "unauthorized") notify(errorText(message));
}

function onStatus(status, error) {
  if (call.finished) return;
  if (status === "reconnecting") setState("reconnecting");
  else if (status === "failed") {
    if (error && error.code === "ended") finishEnded();
    else if (!isDoctor && ui.joinForm && error && error.status === 401) showPrejoin(); // the link must be used again
    else finish("left", t("reconnect.failed"), error ? errorText(error) : "", { rejoin: true });
  }
}

function openSignaling(ticket, resume = null) {
  if (call.signaling) call.signaling.stop();
  call.signaling = new Signaling({ credentials: freshTicket, onMessage, onStatus });
  call.signaling.connect(ticket, { resume });
}

// --- the resume token, kept for this tab alone --------------------------------------------------------------
// A reload (a frozen page, a phone that killed the tab) comes back into the call at once with it, still
// admitted; another tab or device has none and goes through the waiting room. sessionStorage is per tab.

function resumeKey() {
  return call.consultationId ? `teleconsult.resume.${call.consultationId}` : null;
}

function keepResume(token) {
  const key = resumeKey();
  try {
    if (key && token) sessionStorage.setItem(key, token);
  } catch {
    // storage refused (private mode): a reload then goes through the waiting room
  }
}

function forgetResume() {
  const key = resumeKey();
  try {
    if (key) sessionStorage.removeItem(key);
  } catch {
    // nothing kept
  }
}

function keptResume() {
  const key = resumeKey();
  try {
    return key ? sessionStorage.getItem(key) : null;
  } catch {
    return null;
  }
}

/** Media first (the permission prompt may take a while), then a ticket (or the tab's resume token), then the
 * socket. */
async function connect(ticket = null, { resume = null } = {}) {
  call.finished = false;
  ui.outcome.hidden = true;
  ui.callUi.hidden = false;
  setState("connecting");
  await startMedia();
  if (resume) return openSignaling(null, resume);
  let fresh = ticket;
  try {
    if (!fresh) fresh = await freshTicket();
  } catch (error) {
    if (error instanceof ApiError && error.code === "ended") return finishEnded();
    if (error instanceof ApiError && error.status === 401 && isDoctor) return window.location.assign("/login");
    return finish("left", t("reconnect.failed"), errorText(error), { rejoin: true });
  }
  openSignaling(fresh);
}

// --- the end -------------------------------------------------------------------------------------------------

function teardown() {
  if (call.signaling) call.signaling.stop();
  call.signaling = null;
  dropAllPeers();
  stopMedia();
  ui.enableSound.hidden = true;
  ui.waiting.hidden = true;
  renderLobby([]);
}

function finish(state, title, text, { rejoin = false } = {}) {
  if (call.finished) return;
  call.finished = true;
  teardown();
  setState(state);
  ui.callUi.hidden = true;
  ui.outcomeTitle.textContent = title;
  ui.outcomeText.textContent = text || "";
  ui.outcomeText.hidden = !text;
  ui.rejoin.hidden = !rejoin;
  ui.billing.hidden = true;
  ui.outcome.hidden = false;
  ui.outcome.focus();
}

async function finishEnded() {
  forgetResume();
  if (call.finished && call.state === "ended") return;
  call.finished = false;
  finish("ended", t("ended.title"), isDoctor ? "" : t("ended.patient_text"));
  if (isDoctor) await showBilling();
}

async function showBilling() {
  for (let attempt = 0; attempt < 3; attempt += 1) {
    try {
      const consultation = await api(`/api/consultations/${encodeURIComponent(call.consultationId)}`);
      if (consultation && consultation.billing) {
        renderBilling(consultation.billing);
        return;
      }
    } catch (error) {
      console.warn("billing:", error);
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  ui.outcomeText.textContent = t("ended.billing_unavailable");
  ui.outcomeText.hidden = false;
}

function renderBilling(billing) {
  const acts = $("billing-acts");
  acts.replaceChildren(
    ...(billing.acts || []).map((act) =>
      el(
        "li",
        { "data-testid": "billing-act" },
        el("span", { className: "billing__code", text: act.act_code }),
        el("span", { className: "billing__role", text: t(`role.${act.role}`) }),
        el("span", { className: "billing__amount", text: formatAmount(act.amount_cents, billing.currency) }),
      ),
    ),
  );
  $("billing-duration").textContent = t("ended.duration", { duration: formatDuration(billing.duration_s) });
  $("billing-total").textContent = t("ended.total", { amount: formatAmount(billing.total_cents, billing.currency) });
  ui.billing.hidden = false;
}

function hangUp() {
  forgetResume();
  if (call.signaling) call.signaling.leave();
  call.signaling = null;
  finish("left", t("left.title"), t("left.text"), { rejoin: true });
}

function askToEnd() {
  if (ui.endDialog && typeof ui.endDialog.showModal === "function") {
    ui.endDialog.returnValue = "";
    ui.endDialog.showModal();
  } else {
    endForEveryone(); // no <dialog> support: the button itself is the confirmation
  }
}

async function endForEveryone() {
  if (call.signaling && call.signaling.send({ type: "end" })) return; // "ended" comes back to everyone
  try {
    await api(`/api/consultations/${encodeURIComponent(call.consultationId)}/end`, { method: "POST" });
    await finishEnded();
  } catch (error) {
    notify(errorText(error));
  }
}

// --- joining (patient, nurse) --------------------------------------------------------------------------------

function showJoinError(text) {
  ui.joinError.textContent = text;
  ui.joinError.hidden = false;
}

/** Back to the consent form (this tab's participant cookie no longer works: the link was resent, or expired). */
function showPrejoin() {
  forgetResume();
  teardown();
  ui.callUi.hidden = true;
  ui.outcome.hidden = true;
  ui.prejoin.hidden = false;
  const button = ui.joinForm.querySelector('[type="submit"]');
  button.disabled = false;
  if (button.dataset.label) button.textContent = button.dataset.label;
}

async function join(event) {
  event.preventDefault();
  ui.joinError.hidden = true;
  if (!ui.consent.checked) {
    showJoinError(t("error.consent_required"));
    ui.consent.focus();
    return;
  }
  const button = ui.joinForm.querySelector('[type="submit"]');
  const label = button.textContent;
  button.dataset.label = label;
  button.disabled = true;
  button.textContent = button.dataset.busyLabel || label;
  let grant;
  try {
    grant = await api("/api/join", { method: "POST", body: { token: config.token, consent: true }, csrf: false });
  } catch (error) {
    showJoinError(errorText(error));
    button.disabled = false;
    button.textContent = label;
    return;
  }
  setCsrfToken(grant.csrf_token);
  call.consultationId = grant.consultation_id;
  ui.prejoin.hidden = true;
  await connect(grant.ticket);
}

// --- wiring ------------------------------------------------------------------------------------------------

ui.mute.addEventListener("click", toggleMic);
ui.camera.addEventListener("click", toggleCamera);
ui.hangup.addEventListener("click", hangUp);
ui.chatForm.addEventListener("submit", sendChat);
ui.rejoin.addEventListener("click", () => connect());
ui.enableSound.addEventListener("click", () => {
  for (const tile of call.tiles.values()) {
    tile.video.muted = false;
    tile.video.play().catch(() => {});
  }
  ui.enableSound.hidden = true;
});
if (ui.lobbyList) ui.lobbyList.addEventListener("click", onLobbyClick);
if (ui.end) ui.end.addEventListener("click", askToEnd);
if (ui.endDialog) {
  ui.endDialog.addEventListener("close", () => {
    if (ui.endDialog.returnValue === "end") endForEveryone();
  });
}
window.addEventListener("pagehide", () => {
  if (call.signaling) call.signaling.stop();
});

if (isDoctor) {
  if (config.status === "ended" || config.status === "cancelled" || config.status === "no_show") finishEnded();
  else connect(null, { resume: keptResume() });
} else if (ui.joinForm && keptResume()) {
  ui.prejoin.hidden = true; // this tab was in the consultation: back in without the form
  connect(null, { resume: keptResume() });
} else if (ui.joinForm) {
  ui.joinForm.addEventListener("submit", join);
  ui.consent.addEventListener("change", () => {
    if (ui.consent.checked) ui.joinError.hidden = true;
  });
  if (doctorName) document.title = `${t("call.title_patient", { name: doctorName })} — ${t("app.name")}`;
}
