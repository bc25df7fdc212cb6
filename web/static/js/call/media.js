// The local camera and microphone: asked for once, shown in the self view, muted or hidden on request.
// Owns #local-video, #self-off, #media-notice and the mute and camera buttons.
import { t } from "../i18n.js";

const VIDEO = { width: { ideal: 1280 }, height: { ideal: 720 }, facingMode: "user" };

export class LocalMedia {
  constructor() {
    this.video = document.getElementById("local-video");
    this.selfOff = document.getElementById("self-off");
    this.notice = document.getElementById("media-notice");
    this.muteButton = document.getElementById("mute");
    this.cameraButton = document.getElementById("camera");
    this.stream = null;
    this.micOn = true;
    this.camOn = true;
    this.muteButton.addEventListener("click", () => this.toggleMic());
    this.cameraButton.addEventListener("click", () => this.toggleCamera());
  }

  /** The stream, asked for with video and sound, then sound alone, then video alone. */
  async start() {
    if (this.stream) return this.stream;
    let stream = null;
    if (navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
      for (const constraints of [{ audio: true, video: VIDEO }, { audio: true }, { video: VIDEO }]) {
        try {
          stream = await navigator.mediaDevices.getUserMedia(constraints);
          break;
        } catch (error) {
          console.warn("media: getUserMedia", JSON.stringify(constraints), "failed:", error.name);
        }
      }
    }
    this.stream = stream;
    this.show();
    return stream;
  }

  show() {
    const { hasAudio, hasVideo } = this.checks();
    let notice = "";
    if (!hasAudio && !hasVideo) notice = t("media.none");
    else if (!hasVideo) notice = t("media.no_video");
    else if (!hasAudio) notice = t("media.no_audio");
    this.notice.textContent = notice;
    this.notice.hidden = !notice;
    this.muteButton.disabled = !hasAudio;
    this.cameraButton.disabled = !hasVideo;
    if (this.stream) {
      for (const track of this.stream.getAudioTracks()) track.enabled = this.micOn;
      for (const track of this.stream.getVideoTracks()) track.enabled = this.camOn;
    }
    this.video.srcObject = hasVideo ? this.stream : null;
    this.selfOff.textContent = hasVideo ? t("media.camera_off") : t("media.no_camera");
    this.selfOff.hidden = hasVideo && this.camOn;
    if (hasVideo) this.video.play().catch(() => {});
  }

  /** What this device can send: reported to the doctor's lobby. */
  checks() {
    const stream = this.stream;
    return {
      hasVideo: Boolean(stream && stream.getVideoTracks().length),
      hasAudio: Boolean(stream && stream.getAudioTracks().length),
    };
  }

  stop() {
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    this.stream = null;
    this.video.srcObject = null;
  }

  toggleMic() {
    this.micOn = !this.micOn;
    if (this.stream) for (const track of this.stream.getAudioTracks()) track.enabled = this.micOn;
    this.muteButton.setAttribute("aria-pressed", String(!this.micOn));
  }

  toggleCamera() {
    this.camOn = !this.camOn;
    if (this.stream) for (const track of this.stream.getVideoTracks()) track.enabled = this.camOn;
    this.cameraButton.setAttribute("aria-pressed", String(!this.camOn));
    this.selfOff.hidden = this.camOn;
  }
}
