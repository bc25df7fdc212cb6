// One RTCPeerConnection per remote peer, with the "perfect negotiation" pattern (MDN) over protocol v1.
//
// The peer that joined later offers (it calls `start()`); the other side creates its link when that offer
// arrives. Later renegotiations (ICE restarts) go through the same code, glare resolved by `polite`.

const GATHER_WAIT_MS = 1500;

function gatheringComplete(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === "complete") done();
    };
    const timer = setTimeout(done, timeoutMs);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/** The session id of an SDP (`o=<user> <sess-id> <version> ...`): fixed for the life of a peer connection. */
function sessionId(sdp) {
  const origin = /^o=\S+ (\S+) /m.exec(sdp || "");
  return origin ? origin[1] : null;
}

export class PeerLink {
  /**
   * @param {object} o
   * @param {string} o.peerId  the remote peer
   * @param {boolean} o.polite  from welcome.polite
   * @param {RTCIceServer[]} o.iceServers  from welcome.ice_servers (never anything else)
   * @param {MediaStream|null} o.localStream
   * @param {(msg: object) => void} o.send  sends a protocol frame
   * @param {(event: RTCTrackEvent) => void} o.onTrack
   * @param {(state: string) => void} o.onState  the connection state
   */
  constructor({ peerId, polite, iceServers, localStream, send, onTrack, onState }) {
    this.peerId = peerId;
    this.polite = polite;
    this.localStream = localStream;
    this.sendFrame = send;
    this.onState = onState;
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.settingRemoteAnswer = false;
    this.mediaAdded = false;
    this.holding = false;
    this.closed = false;

    const pc = new RTCPeerConnection({ iceServers: iceServers || [] });
    this.pc = pc;
    pc.addEventListener("icecandidate", ({ candidate }) => {
      // Candidates found before the description went out are already in it.
      if (this.holding || this.closed) return;
      this.send({ type: "candidate", to: this.peerId, candidate: candidate ? candidate.toJSON() : null });
    });
    pc.addEventListener("negotiationneeded", () => this.negotiate());
    pc.addEventListener("track", (event) => onTrack(event));
    pc.addEventListener("connectionstatechange", () => {
      if (this.closed) return;
      this.onState(pc.connectionState);
      if (pc.connectionState === "failed") pc.restartIce();
    });
  }

  send(message) {
    if (!this.closed) this.sendFrame(message);
  }

  /** ICE servers from a later welcome (fresh TURN credentials), for the allocations of the next ICE restart. */
  setIceServers(iceServers) {
    if (this.closed) return;
    try {
      this.pc.setConfiguration({ ...this.pc.getConfiguration(), iceServers: iceServers || [] });
    } catch (error) {
      console.warn("webrtc: ICE servers not updated", error);
    }
  }

  /** Add the local tracks; when offering, ask to receive the kinds we cannot send so the offer carries them. */
  addLocalMedia(offering) {
    if (this.mediaAdded) return;
    this.mediaAdded = true;
    const stream = this.localStream;
    for (const kind of ["audio", "video"]) {
      const track = stream ? stream.getTracks().find((tr) => tr.kind === kind) : null;
      if (track) this.pc.addTrack(track, stream);
      else if (offering) this.pc.addTransceiver(kind, { direction: "recvonly" });
    }
  }

  /** We joined after this peer: offer to it (the offer goes out on negotiationneeded). */
  start() {
    this.addLocalMedia(true);
  }

  async negotiate() {
    const pc = this.pc;
    if (this.closed) return;
    try {
      this.makingOffer = true;
      this.holding = true;
      await pc.setLocalDescription();
      if (pc.signalingState !== "have-local-offer") return;
      // A peer that does not trickle (aiortc) needs the candidates in the offer itself.
      await gatheringComplete(pc, GATHER_WAIT_MS);
      if (this.closed || pc.signalingState !== "have-local-offer") return; // rolled back meanwhile
      this.holding = false;
      this.send({ type: "offer", to: this.peerId, sdp: pc.localDescription.sdp });
      if (pc.iceGatheringState === "complete") this.send({ type: "candidate", to: this.peerId, candidate: null });
    } catch (error) {
      console.warn("webrtc: could not make an offer", error);
    } finally {
      this.makingOffer = false;
      this.holding = false;
    }
  }

  /**
   * True when `sdp` comes from another RTCPeerConnection than the one this link talks to: its session id (the
   * `o=` line) differs. That happens when the peer reloaded its page and came back with its resume token: the
   * old connection is dead and a new link must answer.
   */
  fromAnotherConnection(sdp) {
    const current = this.pc.remoteDescription;
    if (!current || !current.sdp) return false;
    return sessionId(current.sdp) !== sessionId(sdp);
  }

  /** An offer or answer from the peer. */
  async receiveDescription(description) {
    const pc = this.pc;
    if (this.closed) return;
    const readyForOffer = !this.makingOffer && (pc.signalingState === "stable" || this.settingRemoteAnswer);
    const collision = description.type === "offer" && !readyForOffer;
    this.ignoreOffer = !this.polite && collision;
    if (this.ignoreOffer) return;
    if (description.type === "answer" && pc.signalingState !== "have-local-offer") return; // stale answer
    this.settingRemoteAnswer = description.type === "answer";
    try {
      await pc.setRemoteDescription(description); // rolls our own offer back if we are polite
    } finally {
      this.settingRemoteAnswer = false;
    }
    if (description.type !== "offer") return;
    this.addLocalMedia(false); // after the offer: our tracks reuse its transceivers
    this.holding = true;
    try {
      await pc.setLocalDescription();
      this.holding = false;
      this.send({ type: "answer", to: this.peerId, sdp: pc.localDescription.sdp });
      if (pc.iceGatheringState === "complete") this.send({ type: "candidate", to: this.peerId, candidate: null });
    } finally {
      this.holding = false;
    }
  }

  /** A trickled candidate from the peer (null: no more candidates). */
  async receiveCandidate(candidate) {
    if (this.closed) return;
    try {
      if (candidate) await this.pc.addIceCandidate(candidate);
      else await this.pc.addIceCandidate();
    } catch (error) {
      if (!this.ignoreOffer && candidate) console.warn("webrtc: candidate refused", error);
    }
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    try {
      this.pc.close();
    } catch {
      // already closed
    }
  }
}
