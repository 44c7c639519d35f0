// idprov admin page: The camera scanner: QR labels decoded in the page.

import { h } from './dom.js';
import { state } from './state.js';

/** Loads the vendored QR decoder (256 kB) only when a camera scan starts. */
export function loadDecoder() {
  if (window.jsQR) return Promise.resolve(window.jsQR);
  return new Promise((resolve, reject) => {
    const script = h('script', { src: '/admin/assets/jsqr.js' });
    script.addEventListener('load', () => (window.jsQR ? resolve(window.jsQR) : reject(new Error('the QR decoder did not load'))));
    script.addEventListener('error', () => reject(new Error('the QR decoder did not load')));
    document.head.append(script);
  });
}

/**
 * Shows the camera in `box`, decodes frames until a label QR code appears,
 * puts its content in `target` and calls `found`. Frames are drawn into a
 * canvas and decoded in the page: nothing leaves the browser.
 */
export async function startCamera(box, target, found) {
  if (!box.hidden) return; // already scanning
  const status = h('p', { class: 'hint', 'aria-live': 'polite', text: 'Starting the camera…' });
  const video = h('video', { playsinline: true, muted: true, autoplay: true });
  const stopButton = h('button', { type: 'button', text: 'Stop camera' });
  box.replaceChildren(video, status, stopButton);
  box.hidden = false;
  let stream = null;
  let frame = 0;
  const stop = () => {
    cancelAnimationFrame(frame);
    if (stream) stream.getTracks().forEach((t) => t.stop());
    stream = null;
    box.hidden = true;
    box.replaceChildren();
  };
  stopButton.addEventListener('click', stop);
  state.cleanups.push(stop);
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    status.textContent = 'This browser offers no camera to this page (a camera needs HTTPS and permission). Use a handheld scanner or paste the label instead.';
    return;
  }
  let decode;
  try {
    [decode, stream] = await Promise.all([
      loadDecoder(),
      navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' }, audio: false }),
    ]);
  } catch (e) {
    status.textContent = `No camera: ${e.message || e.name}.`;
    return;
  }
  if (box.hidden) { stream.getTracks().forEach((t) => t.stop()); return; } // stopped meanwhile
  video.srcObject = stream;
  await video.play().catch(() => {});
  status.textContent = 'Hold the label\'s QR code in front of the camera.';
  const canvas = document.createElement('canvas');
  const context = canvas.getContext('2d', { willReadFrequently: true });
  let lastDecode = 0;
  const scan = (now) => {
    if (!stream) return;
    frame = requestAnimationFrame(scan);
    // About seven decodes a second is plenty and keeps a phone cool.
    if (now - lastDecode < 150 || video.readyState < 2 || !video.videoWidth) return;
    lastDecode = now;
    // Decode at most 640 px wide: QR codes on labels stay readable, work stays small.
    const scale = Math.min(1, 640 / video.videoWidth);
    canvas.width = Math.round(video.videoWidth * scale);
    canvas.height = Math.round(video.videoHeight * scale);
    context.drawImage(video, 0, 0, canvas.width, canvas.height);
    const image = context.getImageData(0, 0, canvas.width, canvas.height);
    const code = decode(image.data, image.width, image.height, { inversionAttempts: 'attemptBoth' });
    if (!code || !code.data) return;
    if (!code.data.startsWith('idprov:')) {
      status.textContent = 'That QR code is not an idprov label.';
      return;
    }
    stop();
    target.value = code.data;
    target.dispatchEvent(new Event('input'));
    found();
  };
  frame = requestAnimationFrame(scan);
}
