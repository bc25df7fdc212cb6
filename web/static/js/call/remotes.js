// The other peers of the room: one video tile and one PeerLink (RTCPeerConnection) each.
// Owns #remotes, #stage-hint and #enable-sound.
import { el } from "../dom.js";
import { t } from "../i18n.js";
import { PeerLink } from "../peers.js";

export class RemotePeers {
  /**
   * @param {object} o
   * @param {boolean} o.isDoctor
   * @param {(message: object) => boolean} o.send  sends a protocol frame
   * @param {() => MediaStream|null} o.localStream
   */
  constructor({ isDoctor, send, localStream }) {
    this.container = document.getElementById("remotes");
    this.stageHint = document.getElementById("stage-hint");
    this.enableSound = document.getElementById("enable-sound");
    this.isDoctor = isDoctor;
    this.send = send;
    this.localStream = localStream;
    this.myPeerId = null;
    this.polite = isDoctor;
    this.iceServers = [];
    this.connected = false;
    this.peers = new Map(); // peer_id -> {peer_id, role, name, polite}
    this.links = new Map(); // peer_id -> PeerLink
    this.tiles = new Map(); // peer_id -> {figure, video, overlay, caption, fallback}
    this.videoReported = new Set(); // peer_ids whose video we told the server we receive
    this.enableSound.addEventListener("click", () => this.unmuteAll());
  }

  /** From a welcome: who we are, which side of perfect negotiation, which ICE servers (never anything else). */
  welcome(message) {
    if (this.myPeerId && this.myPeerId !== message.peer_id) this.dropAll(); // a new seat: start over
    this.myPeerId = message.peer_id;
    this.polite = Boolean(message.polite);
    this.iceServers = Array.isArray(message.ice_servers) ? message.ice_servers : [];
    // A resume's welcome carries fresh TURN credentials: the links kept use them at their next ICE restart.
    for (const link of this.links.values()) link.setIceServers(this.iceServers);
    for (const peer of message.peers || []) this.remember(peer);
  }

  remember(peer) {
    if (peer && peer.peer_id) this.peers.set(peer.peer_id, peer);
  }

  nameOf(peerId) {
    if (peerId === this.myPeerId) return t("call.you");
    const peer = this.peers.get(peerId);
    return peer ? peer.name || t(`role.${peer.role}`) : "";
  }

  /** We are in the room: offer to everyone already there (we are the later one). */
  enter(peers) {
    this.connected = true;
    for (const peer of peers || []) {
      this.remember(peer);
      if (!this.links.has(peer.peer_id)) this.linkTo(peer.peer_id).start();
    }
    this.updateHint();
  }

  setConnected(connected) {
    this.connected = connected;
    this.updateHint();
  }

  async offer(from, sdp) {
    // An offer from another peer connection than the one we know (the peer reloaded its page and resumed): the
    // old connection is dead, start a new one.
    const known = this.links.get(from);
    if (known && known.fromAnotherConnection(sdp)) this.drop(from);
    await this.linkTo(from).receiveDescription({ type: "offer", sdp });
  }

  async answer(from, sdp) {
    const link = this.links.get(from);
    if (link) await link.receiveDescription({ type: "answer", sdp });
  }

  async candidate(from, candidate) {
    const link = this.links.get(from);
    if (link) await link.receiveCandidate(candidate);
  }

  linkTo(peerId) {
    let link = this.links.get(peerId);
    if (link) return link;
    this.tileFor(peerId);
    const known = this.peers.get(peerId);
    link = new PeerLink({
      peerId,
      // The server says, per peer, which side of perfect negotiation we are; the welcome flag is the fallback.
      polite: known && typeof known.polite === "boolean" ? known.polite : this.polite,
      iceServers: this.iceServers,
      localStream: this.localStream(),
      send: (message) => this.send(message),
      onTrack: (event) => this.attachTrack(peerId, event),
      onState: (state) => this.showState(peerId, state),
    });
    this.links.set(peerId, link);
    return link;
  }

  drop(peerId) {
    const link = this.links.get(peerId);
    if (link) link.close();
    this.links.delete(peerId);
    const tile = this.tiles.get(peerId);
    if (tile) {
      tile.video.srcObject = null;
      tile.figure.remove();
      this.tiles.delete(peerId);
    }
    this.updateHint();
  }

  dropAll() {
    for (const peerId of [...this.links.keys(), ...this.tiles.keys()]) this.drop(peerId);
    this.enableSound.hidden = true;
  }

  tileFor(peerId) {
    let tile = this.tiles.get(peerId);
    if (tile) return tile;
    const name = this.nameOf(peerId);
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
    // Once frames are decoded, say so: billing records that video connected (a teleconsultation is by video).
    const reportVideo = () => {
      if (video.videoWidth > 0 && !this.videoReported.has(peerId)) {
        this.videoReported.add(peerId);
        this.send({ type: "media", peer_id: peerId, video: true });
      }
    };
    video.addEventListener("playing", reportVideo);
    video.addEventListener("resize", reportVideo);
    this.tiles.set(peerId, tile);
    this.container.append(figure);
    this.updateHint();
    return tile;
  }

  attachTrack(peerId, event) {
    const tile = this.tileFor(peerId);
    let stream = event.streams && event.streams[0];
    if (!stream) {
      tile.fallback = tile.fallback || new MediaStream();
      tile.fallback.addTrack(event.track);
      stream = tile.fallback;
    }
    if (tile.video.srcObject !== stream) tile.video.srcObject = stream;
    this.play(tile.video);
    event.track.addEventListener("unmute", () => this.play(tile.video));
  }

  play(video) {
    video.play().catch((error) => {
      if (error.name !== "NotAllowedError") return;
      // No user gesture yet for sound: play muted, and offer a button that turns the sound on.
      video.muted = true;
      video.play().catch(() => {});
      this.enableSound.hidden = false;
    });
  }

  unmuteAll() {
    for (const tile of this.tiles.values()) {
      tile.video.muted = false;
      tile.video.play().catch(() => {});
    }
    this.enableSound.hidden = true;
  }

  showState(peerId, state) {
    const tile = this.tiles.get(peerId);
    if (!tile) return;
    tile.figure.dataset.state = state;
    if (state === "connected") tile.overlay.hidden = true;
    else if (state === "disconnected" || state === "failed") {
      tile.overlay.textContent = t("call.peer_trouble");
      tile.overlay.hidden = false;
    }
  }

  updateHint() {
    const alone = this.connected && this.tiles.size === 0;
    this.stageHint.hidden = !alone;
    if (alone) this.stageHint.textContent = this.isDoctor ? t("call.alone_doctor") : t("call.alone");
    this.container.dataset.count = String(this.tiles.size);
  }
}
