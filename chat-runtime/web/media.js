// Confab web client: media messages — photos, videos, audio and files.
// Uploads go through the SDK (POST /v1/media, with progress); <img>,
// <video>, <audio> and download links use signed links (POST
// /v1/media/{id}/link), because those elements cannot send an Authorization
// header. app.js and this module import each other: nothing here runs at
// load time, and app.js's `state`, `$`, `el`, `api` and rendering functions
// are only used once the app is running.
import { $, api, el, renderMessages, sendMessage, state } from "./app.js";

const MEDIA_KINDS = ["image", "video", "audio", "file"];
const LINK_TTL_SECS = 3600;
// A cached link is renewed when less than this is left, so that an element
// given the link now can still load (and seek) with it for a while.
const LINK_RENEW_MS = 10 * 60 * 1000;
const MAX_CAPTION_BYTES = 1024;
const THUMB_PX = 320; // the server's thumbnails fit in 320×320
const KIND_WORDS = { image: "a photo", video: "a video", audio: "audio" };

const media = {
  links: new Map(), // media_id -> {promise, expires}: one signed link per media, shared by every element
  nodes: new Map(), // "chat_id:seq" -> rendered attachment, reused across re-renders so playback and loaded images survive
};

export function isMedia(m) { return MEDIA_KINDS.includes(m.kind); }

/** The message kind for a picked file, from its type. */
function kindOf(file) {
  const top = (file.type || "").split("/")[0];
  return KIND_WORDS[top] ? top : "file";
}

function humanSize(bytes) {
  const units = ["B", "KB", "MB", "GB"];
  let n = bytes, i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? String(n) : n.toFixed(n < 10 ? 1 : 0)) + " " + units[i];
}

/** The chat list's line for a media message. */
export function mediaPreview(m) {
  switch (m.kind) {
    case "image": return "📷 Photo";
    case "video": return "🎥 Video";
    case "audio": return "🎤 Audio";
    default: return "📄 " + (m.name || "File");
  }
}

export function forgetMedia() { media.links.clear(); media.nodes.clear(); }

// ---------- uploading and sending ----------
/** Uploads `file`; resolves to the server's upload view, reporting
 *  progress (0..1). The server sniffs the bytes; the declared type only
 *  says which kind is meant. */
function upload(file, onProgress) {
  return api.upload(file, { name: file.name, contentType: file.type || "application/octet-stream", onProgress });
}

/** What to tell the user when uploading `file` failed. */
function uploadErrorText(file, err) {
  switch (err.code) {
    case "too_large": return `“${file.name}” (${humanSize(file.size)}) is too large to send.`;
    case "unsupported_media_type":
      return `“${file.name}” cannot be sent as ${KIND_WORDS[kindOf(file)]}: its contents are not a supported type.`;
    default: return `“${file.name}” was not sent: ${err.message}`;
  }
}

/** Uploads each file and sends it as a media message; the composer's text
 *  becomes the first file's caption. */
function sendFiles(files) {
  const chatId = state.open;
  if (!chatId || !files.length) return;
  const caption = $("text").value.trim();
  if (new TextEncoder().encode(caption).length > MAX_CAPTION_BYTES) {
    $("chat-error").textContent = "A caption can be at most 1024 bytes; shorten the text.";
    return;
  }
  $("text").value = ""; $("chat-error").textContent = "";
  [...files].forEach((file, i) => sendFile(chatId, file, i === 0 ? caption : ""));
}

async function sendFile(chatId, file, caption) {
  const id = crypto.randomUUID();
  const p = { chat_id: chatId, body: caption, file: file.name || "file", progress: 0 };
  state.pending.set(id, p);
  renderMessages(true);
  try {
    p.upload = await upload(file, (f) => { p.progress = f; showProgress(id, f); });
  } catch (err) {
    p.failed = uploadErrorText(file, err);
    $("chat-error").textContent = p.failed;
    renderMessages();
    return;
  }
  renderMessages();
  sendMessage(chatId, id, { kind: p.upload.kind, media_id: p.upload.media_id, caption });
}

/** Moves a pending upload's progress bar without re-rendering the chat. */
function showProgress(id, fraction) {
  const bar = document.querySelector(`#messages li[data-pending="${id}"] progress`);
  if (bar) bar.value = fraction;
}

/** The line a pending media message shows: the file and its upload progress. */
export function uploadLine(p) {
  const line = el("span", "upload", "📎 " + p.file + " ");
  if (!p.upload && !p.failed) {
    const bar = document.createElement("progress");
    bar.max = 1; bar.value = p.progress; bar.setAttribute("aria-label", "Uploading " + p.file);
    line.append(bar);
  }
  return line;
}

// ---------- signed links ----------
/** A signed link to media `id` as {url, expires}; one per media id, renewed
 *  shortly before it expires. Rejects with the server's error (code "gone"
 *  once retention deleted the media). */
function mediaLink(id) {
  const cached = media.links.get(id);
  if (cached && cached.expires - Date.now() > LINK_RENEW_MS) return cached.promise;
  // Expiry on this tab's clock (the server's expires_at is on its own).
  const expires = Date.now() + LINK_TTL_SECS * 1000;
  const promise = api.mediaLink(id, LINK_TTL_SECS).then((l) => ({ url: l.url, expires }));
  const entry = { promise, expires };
  media.links.set(id, entry);
  promise.catch(() => { if (media.links.get(id) === entry) media.links.delete(id); });
  return promise;
}

/** The thumbnail behind a link: the signature covers the media, not the path. */
function thumbnailUrl(url) {
  const u = new URL(url, location.origin);
  u.pathname += "/thumbnail";
  return u.pathname + u.search;
}

// ---------- rendering ----------
/** The attachment of media message `m`, built once per message. */
export function attachmentNode(m) {
  const key = m.chat_id + ":" + m.seq;
  let node = media.nodes.get(key);
  if (!node) { node = buildAttachment(m); media.nodes.set(key, node); }
  return node;
}

function buildAttachment(m) {
  const box = document.createElement("div");
  box.className = "attachment " + m.kind;
  box.dataset.media = m.media_id;
  if (m.kind === "image") box.append(imageThumb(m, box));
  else if (m.kind === "video" || m.kind === "audio") box.append(player(m, box));
  else box.append(fileLink(m, box));
  return box;
}

/** Replaces an attachment by a note saying why it cannot be shown. */
function unavailable(box, err) {
  const text = err.code === "gone" ? "Media no longer available" : "Media unavailable: " + err.message;
  box.replaceChildren(el("span", "unavailable", text));
}

/** When `elem` fails to load — typically its link expired — asks for a new
 *  link and hands it to `apply`; a second failure in a row gives up. */
function reloadOnError(elem, m, box, apply, loadedEvent) {
  let retried = false;
  elem.addEventListener(loadedEvent, () => { retried = false; });
  elem.addEventListener("error", () => {
    if (retried) { unavailable(box, new Error("it cannot be loaded")); return; }
    retried = true;
    media.links.delete(m.media_id);
    mediaLink(m.media_id).then(apply, (err) => unavailable(box, err));
  });
}

/** Width and height of a `w`×`h` picture shown within `max`×`max`. */
function fit(w, h, max) {
  if (!w || !h) return [max * 0.75, max * 0.75];
  const scale = Math.min(1, max / Math.max(w, h));
  return [Math.round(w * scale), Math.round(h * scale)];
}

/** A photo's thumbnail: a placeholder of the right shape and average colour
 *  until it loads; a click opens the full image. */
function imageThumb(m, box) {
  const button = document.createElement("button");
  button.type = "button"; button.className = "thumb";
  button.setAttribute("aria-label", "Open photo");
  const [w, h] = fit(m.width, m.height, THUMB_PX);
  button.style.width = w + "px";
  button.style.aspectRatio = `${w} / ${h}`;
  button.style.backgroundColor = placeholderColour(m.blurhash);
  const img = document.createElement("img");
  img.alt = m.caption || "Photo";
  img.addEventListener("load", () => img.classList.add("loaded"));
  const apply = (l) => { img.src = m.thumbnail ? thumbnailUrl(l.url) : l.url; };
  reloadOnError(img, m, box, apply, "load");
  mediaLink(m.media_id).then(apply, (err) => unavailable(box, err));
  button.append(img);
  button.addEventListener("click", () => openViewer(m, box));
  return button;
}

/** A `<video>` or `<audio>` player; the server answers ranges, so seeking
 *  fetches only what it needs. */
function player(m, box) {
  const p = document.createElement(m.kind);
  p.controls = true; p.preload = "metadata";
  p.setAttribute("aria-label", m.kind === "video" ? "Video" : "Audio");
  const apply = (l) => {
    // Resume where playback failed (an expired link fails the next range).
    const at = p.currentTime;
    p.src = l.url;
    if (at) p.addEventListener("loadedmetadata", () => { p.currentTime = at; }, { once: true });
  };
  reloadOnError(p, m, box, apply, "loadedmetadata");
  mediaLink(m.media_id).then(apply, (err) => unavailable(box, err));
  return p;
}

/** A file as a download link with its name and size. */
function fileLink(m, box) {
  const a = document.createElement("a");
  a.className = "file"; a.href = "#"; a.download = m.name || "";
  a.append(el("span", "file-name", "📄 " + (m.name || "File")), el("span", "file-size", humanSize(m.size)));
  let expires = 0;
  const apply = (l) => { a.href = l.url; expires = l.expires; };
  mediaLink(m.media_id).then(apply, (err) => unavailable(box, err));
  // A link rendered long ago may have expired: renew it, then follow it.
  a.addEventListener("click", (e) => {
    if (expires - Date.now() > LINK_RENEW_MS) return;
    e.preventDefault();
    mediaLink(m.media_id).then((l) => { apply(l); a.click(); }, (err) => unavailable(box, err));
  });
  return a;
}

/** Shows the full image of `m` in the viewer dialog. */
function openViewer(m, box) {
  mediaLink(m.media_id).then((l) => {
    $("viewer-img").src = l.url;
    $("viewer-img").alt = m.caption || "Photo";
    $("viewer-caption").textContent = m.caption || "";
    $("viewer").showModal();
  }, (err) => unavailable(box, err));
}

// The average colour of a BlurHash: its DC component, base-83 digits 2–5,
// is the colour as 24-bit sRGB. Enough for a placeholder; no full decode.
const BASE83 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~";
function placeholderColour(hash) {
  if (!hash || hash.length < 6) return "";
  let rgb = 0;
  for (const ch of hash.slice(2, 6)) {
    const digit = BASE83.indexOf(ch);
    if (digit < 0) return "";
    rgb = rgb * 83 + digit;
  }
  return "#" + rgb.toString(16).padStart(6, "0");
}

/** Wires the attach button, drag-and-drop onto the open chat and the viewer. */
export function wireMedia() {
  const input = $("attach-input");
  $("attach").addEventListener("click", () => input.click());
  input.addEventListener("change", () => { sendFiles(input.files); input.value = ""; });
  // Dropping a file anywhere else must not navigate away from the app.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
  const pane = $("chat");
  pane.addEventListener("dragover", (e) => {
    if (!state.open || !e.dataTransfer.types.includes("Files")) return;
    e.preventDefault(); e.dataTransfer.dropEffect = "copy"; pane.classList.add("dropping");
  });
  pane.addEventListener("dragleave", (e) => { if (!pane.contains(e.relatedTarget)) pane.classList.remove("dropping"); });
  pane.addEventListener("drop", (e) => {
    e.preventDefault(); pane.classList.remove("dropping");
    if (state.open) sendFiles(e.dataTransfer.files);
  });
  const viewer = $("viewer");
  $("viewer-close").addEventListener("click", () => viewer.close());
  // A click on the backdrop (outside the picture) closes the viewer too.
  viewer.addEventListener("click", (e) => { if (e.target === viewer) viewer.close(); });
  viewer.addEventListener("close", () => { $("viewer-img").removeAttribute("src"); });
}
