// Confab web client: the reference client of protocol v1 (docs/protocol.md),
// built on the TypeScript SDK (@confab/client, its compiled modules in
// ./sdk/): the SDK speaks the protocol — resume, reconnect, the send queue,
// dedupe, receipts — and this file draws the app. Plain ES modules, no build
// step. One browser profile = one device (its watermarks live in IndexedDB).
import { ConfabClient, IndexedDbStore, Rest } from "./sdk/index.js";
import { attachmentNode, forgetMedia, isMedia, mediaPreview, uploadLine, wireMedia } from "./media.js";

export const $ = (id) => document.getElementById(id);
export const state = {
  token: localStorage.getItem("confab.token"),
  me: localStorage.getItem("confab.user"),
  client: null,          // the SDK's live session
  chats: new Map(),      // chat_id -> chat view (from the server) + messages Map(seq -> message)
  open: null,            // open chat id
  pending: new Map(),    // client_msg_id -> {chat_id, body, seq once sent, failed}
  early: [],             // messages that arrived before their chat was listed
  names: new Map(),      // user_id -> display name, kept after members leave
  presence: new Map(),   // user_id -> {online, last_seen}
  typing: new Map(),     // chat_id -> {user_id, until}
  lastTypingSent: 0,
  loadingOlder: false,
};
// REST on the page's own origin: paths (and signed media links) stay relative.
export const api = new Rest({ url: "", token: state.token || undefined });

function formData(form) { return Object.fromEntries(new FormData(form).entries()); }

$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try { await login(formData(e.target)); } catch (err) { $("auth-error").textContent = err.message; }
});
$("register-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = formData(e.target);
  try {
    await api.register({ phone: f.phone, display_name: f.display_name, password: f.password });
    await login({ phone: f.phone, password: f.password });
  } catch (err) { $("auth-error").textContent = err.message; }
});
async function login(f) {
  const s = await api.login(f.phone, f.password);
  state.token = s.token; state.me = s.user_id;
  localStorage.setItem("confab.token", s.token);
  localStorage.setItem("confab.user", s.user_id);
  start();
}
$("logout").addEventListener("click", async () => {
  try { await api.logout(); } catch (_) { /* already invalid */ }
  signOut();
});
function signOut() {
  localStorage.removeItem("confab.token"); localStorage.removeItem("confab.user");
  const client = state.client;
  state.client = null; // first: its closing is no news to this page
  if (client) client.close();
  if (state.me) watermarks(state.me).clear().catch(() => {});
  state.token = null; state.me = null; api.token = undefined;
  state.chats.clear(); state.open = null; state.synced = false;
  forgetMedia();
  show();
}

// ---------- the live session (the SDK) ----------
// Each user's watermarks in a database of their own, so a second account
// in the same browser resumes from its own position.
function watermarks(user) { return new IndexedDbStore({ name: "confab-" + user }); }

function connect() {
  const client = new ConfabClient({ url: location.origin, token: state.token, storage: watermarks(state.me) });
  state.client = client;
  client.on("state", ({ state: s, closeCode, error }) => {
    if (s === "open") $("offline").hidden = true;
    else if (s === "connecting" && closeCode !== undefined) { state.synced = false; $("offline").hidden = false; }
    else if (s === "closed" && error && error.code !== "closed" && state.client === client) {
      signOut(); $("auth-error").textContent = "Please log in again.";
    } else if (s === "closed" && error && state.client === client) {
      // A terminal close that is not about the token (1000, 1009, 4102): a
      // user action brings the app back; until then it says it is offline.
      $("offline").hidden = false;
    }
  });
  client.on("synced", () => { state.synced = true; refreshChats(); });
  client.on("message", onMessage);
  client.on("sent", onSent);
  client.on("receipt", onReceipt);
  client.on("typing", (f) => {
    state.typing.set(f.chat_id, { user_id: f.user_id, until: Date.now() + 3000 });
    renderHeader(); setTimeout(renderHeader, 3100);
  });
  client.on("presence", onPresence);
  client.connect().catch(() => { /* told through "state" */ });
}
function onPresence(f) {
  state.presence.set(f.user_id, { online: f.online, last_seen: f.last_seen });
  renderHeader();
}

// ---------- chats ----------
function chatEntry(view) {
  const old = state.chats.get(view.chat_id);
  const entry = { ...view, messages: old ? old.messages : new Map(), oldest: old ? old.oldest : null, complete: old ? old.complete : false };
  state.chats.set(view.chat_id, entry);
  for (const m of view.members) state.names.set(m.user_id, m.display_name);
  return entry;
}
async function refreshChats() {
  try {
    for (const v of await state.client.chats()) chatEntry(v);
    const early = state.early; state.early = [];
    for (const m of early) if (state.chats.has(m.chat_id)) onMessage(m);
    renderList();
    if (state.open) openChat(state.open); else routeFromHash();
  } catch (_) { /* reconnect will retry */ }
}

// A 1:1 peer's presence, asked again until known: the chat's first
// message is what makes the two contacts (before it the server says 404).
function askPresence(c) {
  if (c.kind !== "direct" || !peer(c) || state.presence.has(peer(c).user_id)) return;
  state.client.presence(peer(c).user_id).then(onPresence, () => {});
}
function onMessage(m) {
  const c = state.chats.get(m.chat_id);
  if (!c) {
    // A chat this tab has not listed yet (resume backlog, or a new chat):
    // hold the message until the chat list arrives.
    state.early.push(m);
    if (state.early.length === 1 && state.synced) refreshChats();
    return;
  }
  c.messages.set(m.seq, m);
  if (m.seq > c.last_seq) { c.last_seq = m.seq; c.last_message = m; }
  if (m.client_msg_id && m.sender === state.me) state.pending.delete(m.client_msg_id);
  if (m.kind === "system") refreshMembers(m.chat_id);
  askPresence(c);
  if (state.open === m.chat_id && document.visibilityState === "visible") markRead(c);
  else if (m.sender !== state.me) c.unread = Math.max(0, c.last_seq - c.read_seq);
  renderList();
  if (state.open === m.chat_id) renderMessages(true);
}
function onSent(f) {
  const p = state.pending.get(f.client_msg_id);
  if (p) { p.seq = f.seq; }
  const c = state.chats.get(f.chat_id);
  if (c) askPresence(c);
  if (c && !c.messages.has(f.seq) && p) c.messages.set(f.seq, ownMessage(f, p));
  state.pending.delete(f.client_msg_id);
  if (state.open === f.chat_id) renderMessages(true);
}
// The message this device sent, as the server stored it.
function ownMessage(f, p) {
  const m = { chat_id: f.chat_id, seq: f.seq, sender: state.me, client_msg_id: f.client_msg_id, sent_at: f.sent_at };
  // A media message carries what the upload answered, and the text as its caption.
  return p.upload ? { ...p.upload, ...m, caption: p.body } : { ...m, kind: "text", body: p.body };
}
function onReceipt(f) {
  const c = state.chats.get(f.chat_id);
  if (!c) return;
  const m = c.members.find((x) => x.user_id === f.user_id);
  // Receipts may arrive out of order: watermarks only ever rise.
  if (m) { m.delivered_seq = Math.max(m.delivered_seq, f.delivered_seq); m.read_seq = Math.max(m.read_seq, f.read_seq); }
  for (const x of c.members) {
    x.delivered_seq = Math.max(x.delivered_seq, f.delivered_all_seq);
    x.read_seq = Math.max(x.read_seq, f.read_all_seq);
  }
  if (f.user_id === state.me) { c.read_seq = f.read_seq; c.unread = Math.max(0, c.last_seq - c.read_seq); renderList(); }
  if (state.open === f.chat_id) renderMessages();
}
async function refreshMembers(chatId) {
  try {
    const view = await api.chat(chatId);
    chatEntry(view); renderList();
    if (state.open === chatId) { renderHeader(); renderMembers(); }
  } catch (err) {
    if (state.open === chatId) $("chat-error").textContent = err.message;
    state.chats.delete(chatId); renderList();
  }
}
function markRead(c) {
  if (c.last_seq > c.read_seq) { state.client.markRead(c.chat_id, c.last_seq); c.read_seq = c.last_seq; }
  c.unread = 0;
}

function peer(c) { return c.members.find((m) => m.user_id !== state.me); }
function chatName(c) { return c.kind === "group" ? c.title : (peer(c) ? peer(c).display_name : "Chat"); }
function memberName(c, id) { return state.names.get(id) || "someone"; }
function time(ms) {
  const d = new Date(ms);
  return d.toDateString() === new Date().toDateString()
    ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleDateString();
}
function preview(c, m) {
  if (!m) return "";
  if (m.kind === "system") return systemText(c, m);
  return isMedia(m) ? mediaPreview(m) : m.body;
}
function systemText(c, m) {
  const who = memberName(c, m.user_id), by = memberName(c, m.sender);
  return { created: createdText(c, m, by), joined: who + " joined", left: who + " left",
           added: by + " added " + who, removed: by + " removed " + who,
           promoted: who + " is now an admin" }[m.event] || m.event;
}

// Ann created “Team” with Bob, Cy: the title and members the group was made with.
function createdText(c, m, by) {
  const others = (m.members || []).filter((id) => id !== m.sender).map((id) => memberName(c, id));
  const title = m.title ? " \u201c" + m.title + "\u201d" : " the group";
  return by + " created" + title + (others.length ? " with " + others.join(", ") : "");
}

// ---------- rendering ----------
function renderList() {
  const list = $("chat-list");
  list.replaceChildren();
  const chats = [...state.chats.values()].sort((a, b) => (b.last_message?.sent_at || 0) - (a.last_message?.sent_at || 0));
  for (const c of chats) {
    const li = document.createElement("li");
    li.tabIndex = 0; li.dataset.chat = c.chat_id; li.setAttribute("role", "button");
    if (c.chat_id === state.open) li.setAttribute("aria-current", "true");
    const name = el("span", "name", chatName(c));
    const when = el("span", "time", c.last_message ? time(c.last_message.sent_at) : "");
    const last = el("span", "last", preview(c, c.last_message));
    li.append(name, when, last);
    if (c.unread > 0 && c.chat_id !== state.open) {
      const b = el("span", "badge", String(c.unread)); b.setAttribute("aria-label", c.unread + " unread"); li.append(b);
    }
    li.onclick = () => { location.hash = "chat=" + c.chat_id; };
    li.onkeydown = (e) => { if (e.key === "Enter") li.onclick(); };
    list.append(li);
  }
}
export function el(tag, cls, text) { const e = document.createElement(tag); e.className = cls; e.textContent = text; return e; }

function tickStatus(c, seq) {
  const others = c.members.filter((m) => m.user_id !== state.me);
  if (others.length && others.every((m) => m.read_seq >= seq)) return "read";
  if (others.length && others.every((m) => m.delivered_seq >= seq)) return "delivered";
  return "sent";
}

export function renderMessages(stickToBottom) {
  const c = state.chats.get(state.open);
  const box = $("messages");
  if (!c) { box.replaceChildren(); return; }
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  const prevHeight = box.scrollHeight, prevTop = box.scrollTop;
  box.replaceChildren();
  const items = [...c.messages.values()].sort((a, b) => a.seq - b.seq);
  for (const m of items) box.append(messageItem(c, m));
  for (const [id, p] of state.pending) if (p.chat_id === c.chat_id && !p.seq) box.append(pendingItem(id, p));
  if (stickToBottom || atBottom) box.scrollTop = box.scrollHeight;
  else box.scrollTop = prevTop + (box.scrollHeight - prevHeight);
}
function messageItem(c, m) {
  const li = document.createElement("li");
  li.dataset.seq = m.seq;
  if (m.kind === "system") { li.className = "system"; li.textContent = systemText(c, m); return li; }
  const mine = m.sender === state.me;
  if (mine) li.classList.add("mine");
  if (!mine && c.kind === "group") li.append(el("span", "sender", memberName(c, m.sender)));
  if (isMedia(m)) li.append(attachmentNode(m));
  li.append(el("span", "body", isMedia(m) ? m.caption || "" : m.body));
  const meta = el("span", "meta", time(m.sent_at));
  if (mine) {
    const status = tickStatus(c, m.seq);
    const t = el("span", "tick", status === "sent" ? "✓" : "✓✓");
    t.dataset.status = status; t.setAttribute("aria-label", status);
    meta.append(t);
  }
  li.append(meta);
  return li;
}
function pendingItem(id, p) {
  const li = document.createElement("li");
  li.className = "mine"; li.dataset.pending = id;
  if (p.file) li.append(uploadLine(p));
  li.append(el("span", "body", p.body));
  const meta = el("span", "meta", p.failed ? "not sent: " + p.failed : "");
  const t = el("span", "tick", p.failed ? "!" : "🕓"); t.dataset.status = p.failed ? "failed" : "pending";
  t.setAttribute("aria-label", p.failed ? "failed" : "sending");
  meta.append(t); li.append(meta);
  return li;
}

function renderHeader() {
  const c = state.chats.get(state.open);
  if (!c) return;
  $("chat-title").textContent = chatName(c);
  const t = state.typing.get(c.chat_id);
  let status = "";
  if (t && t.until > Date.now()) status = (c.kind === "group" ? memberName(c, t.user_id) + " is " : "") + "typing…";
  else if (c.kind === "group") status = c.members.length + " members";
  else if (peer(c)) {
    const p = state.presence.get(peer(c).user_id);
    if (p) status = p.online ? "online" : (p.last_seen ? "last seen " + time(p.last_seen) : "");
  }
  $("chat-status").textContent = status;
  $("members-toggle").hidden = c.kind !== "group";
}
function renderMembers() {
  const c = state.chats.get(state.open);
  if (!c || c.kind !== "group") { $("members").hidden = true; return; }
  const admin = c.members.some((m) => m.user_id === state.me && m.role === "admin");
  const ul = $("member-list"); ul.replaceChildren();
  for (const m of c.members) {
    const li = el("li", "", m.display_name + (m.role === "admin" ? " (admin)" : "") + " · " + m.phone);
    if (admin && m.user_id !== state.me) {
      const b = document.createElement("button"); b.type = "button"; b.textContent = "Remove";
      b.setAttribute("aria-label", "Remove " + m.display_name);
      b.onclick = () => api.removeMember(c.chat_id, m.user_id).then(() => refreshMembers(c.chat_id)).catch((e) => { $("chat-error").textContent = e.message; });
      li.append(b);
    }
    ul.append(li);
  }
  $("add-member").hidden = !admin;
  $("invite-box").hidden = !admin;
  if (admin) showInvite(c.chat_id, false);
}
// An invite link carries the group id and the group's invite code; only
// admins see the code, and a new one makes the old link stop working.
function inviteLink(chat_id, code) { return location.origin + "/#join=" + chat_id + "/" + code; }
function parseInvite(text) {
  const m = /([0-9a-f-]{36})\/([A-Za-z0-9_-]{22})/.exec(text);
  return m && { chat_id: m[1], invite: m[2] };
}
async function showInvite(chat_id, reset) {
  try {
    const invite = await state.client.invite(chat_id, reset);
    if (state.open === chat_id) $("group-invite").textContent = inviteLink(chat_id, invite);
  } catch (err) { $("chat-error").textContent = err.message; }
}
$("reset-invite").addEventListener("click", () => showInvite(state.open, true));

// ---------- opening a chat, history ----------
async function openChat(id) {
  state.open = id;
  $("app").classList.add("has-chat");
  $("chat-error").textContent = "";
  let c = state.chats.get(id);
  if (!c) {
    $("messages").replaceChildren(); $("chat-title").textContent = ""; $("chat-status").textContent = "";
    try { c = chatEntry(await api.chat(id)); }
    catch (err) { $("chat-error").textContent = err.message; $("composer").hidden = true; return; }
  }
  $("composer").hidden = false;
  renderList(); renderHeader(); renderMembers();
  if (c.messages.size < 30 && !c.complete) await loadOlder(c);
  renderMessages(true);
  markRead(c); renderList();
  askPresence(c);
  $("text").focus();
}
async function loadOlder(c) {
  if (state.loadingOlder || c.complete) return;
  state.loadingOlder = true;
  try {
    const page = { limit: 30 };
    const oldest = Math.min(...[...c.messages.keys()], Infinity);
    if (oldest !== Infinity) page.before = oldest;
    const r = await state.client.history(c.chat_id, page);
    for (const m of r.messages) c.messages.set(m.seq, m);
    if (r.next_before == null) c.complete = true;
  } catch (err) {
    $("chat-error").textContent = err.message;
  } finally { state.loadingOlder = false; }
}
$("messages").addEventListener("scroll", async () => {
  const c = state.chats.get(state.open);
  if (c && $("messages").scrollTop < 40 && !c.complete) { await loadOlder(c); renderMessages(); }
});
document.addEventListener("visibilitychange", () => {
  const c = state.chats.get(state.open);
  if (c && document.visibilityState === "visible") { markRead(c); renderList(); }
});
function routeFromHash() {
  if (location.hash.startsWith("#join=")) $("join-invite").value = location.href;
  const m = /chat=([0-9a-f-]{36})/.exec(location.hash);
  if (m) openChat(m[1]);
  else { state.open = null; $("app").classList.remove("has-chat"); renderList(); }
}
window.addEventListener("hashchange", routeFromHash);
$("back").addEventListener("click", () => { location.hash = ""; });

// ---------- composing ----------
$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("text").value.trim();
  if (!text || !state.open) return;
  const id = crypto.randomUUID();
  state.pending.set(id, { chat_id: state.open, body: text });
  $("text").value = "";
  renderMessages(true);
  sendMessage(state.open, id, text);
});
// Sends through the SDK's queue: sent once connected, retried with the same
// client_msg_id until stored (the server stores it once). A refusal shows on
// the pending message.
export function sendMessage(chatId, id, content) {
  state.client.send(chatId, content, id).catch((err) => {
    const p = state.pending.get(id);
    if (p) { p.failed = err.message; renderMessages(); }
  });
}
$("text").addEventListener("input", () => {
  if (state.open && Date.now() - state.lastTypingSent > 2000) {
    state.lastTypingSent = Date.now(); state.client.typing(state.open);
  }
});

// ---------- creating chats and groups ----------
async function lookup(phone) { return (await state.client.lookup(phone.trim())).user_id; }
$("new-direct").addEventListener("submit", async (e) => {
  e.preventDefault(); $("side-error").textContent = "";
  try {
    const chat = await state.client.openDirect($("direct-phone").value.trim());
    chatEntry(chat); e.target.reset(); location.hash = "chat=" + chat.chat_id;
  } catch (err) { $("side-error").textContent = err.message; }
});
$("new-group").addEventListener("submit", async (e) => {
  e.preventDefault(); $("side-error").textContent = "";
  try {
    const phones = $("group-phones").value.split(",").map((p) => p.trim()).filter(Boolean);
    const members = [];
    for (const p of phones) members.push(await lookup(p));
    const chat = await state.client.createGroup($("group-title").value.trim(), members);
    chatEntry(chat); e.target.reset(); location.hash = "chat=" + chat.chat_id;
  } catch (err) { $("side-error").textContent = err.message; }
});
$("join-group").addEventListener("submit", async (e) => {
  e.preventDefault(); $("side-error").textContent = "";
  try {
    const invite = parseInvite($("join-invite").value);
    if (!invite) throw new Error("paste a whole invite link");
    const chat = await state.client.join(invite.chat_id, invite.invite);
    chatEntry(chat); e.target.reset(); location.hash = "chat=" + chat.chat_id;
  } catch (err) { $("side-error").textContent = err.message; }
});
$("members-toggle").addEventListener("click", () => { $("members").hidden = !$("members").hidden; renderMembers(); });
$("add-member").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const user_id = await lookup($("add-phone").value);
    chatEntry(await state.client.addMember(state.open, user_id)); e.target.reset(); renderMembers(); renderHeader();
  } catch (err) { $("chat-error").textContent = err.message; }
});
$("leave").addEventListener("click", async () => {
  try {
    await state.client.leave(state.open);
    state.chats.delete(state.open); location.hash = "";
  } catch (err) { $("chat-error").textContent = err.message; }
});

// ---------- start ----------
function show() {
  const authed = !!state.token;
  $("auth").hidden = authed; $("app").hidden = !authed;
}
function start() {
  show();
  if (!state.token) return;
  connect();
}
wireMedia();
start();
