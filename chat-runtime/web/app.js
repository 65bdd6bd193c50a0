// Confab web client: the reference client of protocol v1 (docs/protocol.md).
// Plain JavaScript, no dependencies. One tab = one device.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  token: localStorage.getItem("confab.token"),
  me: localStorage.getItem("confab.user"),
  ws: null,
  backoff: 500,
  chats: new Map(),      // chat_id -> chat view (from the server) + messages Map(seq -> message)
  highs: {},             // chat_id -> highest seq this tab holds (resume watermarks)
  open: null,            // open chat id
  pending: new Map(),    // client_msg_id -> {chat_id, body, sent_at}
  early: [],             // messages that arrived before their chat was listed
  names: new Map(),      // user_id -> display name, kept after members leave
  requests: new Map(),   // req_id -> callback
  presence: new Map(),   // user_id -> {online, last_seen}
  typing: new Map(),     // chat_id -> {user_id, until}
  lastTypingSent: 0,
  loadingOlder: false,
};

// ---------- REST ----------
async function rest(method, path, body) {
  const headers = { "content-type": "application/json" };
  if (state.token) headers.authorization = "Bearer " + state.token;
  const resp = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const text = await resp.text();
  const data = text ? JSON.parse(text) : null;
  // Carry the server's stable error code (docs/protocol.md) for callers that switch on it.
  if (!resp.ok) throw Object.assign(new Error((data && data.message) || resp.statusText), { code: data && data.code, status: resp.status });
  return data;
}

function formData(form) { return Object.fromEntries(new FormData(form).entries()); }

$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try { await login(formData(e.target)); } catch (err) { $("auth-error").textContent = err.message; }
});
$("register-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = formData(e.target);
  try {
    await rest("POST", "/v1/register", f);
    await login({ phone: f.phone, password: f.password });
  } catch (err) { $("auth-error").textContent = err.message; }
});
async function login(f) {
  const s = await rest("POST", "/v1/login", { phone: f.phone, password: f.password });
  state.token = s.token; state.me = s.user_id;
  localStorage.setItem("confab.token", s.token);
  localStorage.setItem("confab.user", s.user_id);
  start();
}
$("logout").addEventListener("click", async () => {
  try { await rest("POST", "/v1/logout"); } catch (_) { /* already invalid */ }
  signOut();
});
function signOut() {
  localStorage.removeItem("confab.token"); localStorage.removeItem("confab.user");
  state.token = null; state.me = null;
  if (state.ws) { state.ws.onclose = null; state.ws.close(1000); state.ws = null; }
  state.chats.clear(); state.highs = {}; state.open = null;
  forgetMedia();
  show();
}

// ---------- WebSocket ----------
function send(frame) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) { state.ws.send(JSON.stringify(frame)); return true; }
  return false;
}
function request(frame) {
  return new Promise((resolve, reject) => {
    const req_id = crypto.randomUUID();
    state.requests.set(req_id, { resolve, reject });
    if (!send({ ...frame, req_id })) { state.requests.delete(req_id); reject(new Error("offline")); }
  });
}

function connect() {
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/v1/ws";
  const ws = new WebSocket(url);
  state.ws = ws;
  ws.onopen = () => ws.send(JSON.stringify({ type: "hello", token: state.token, watermarks: state.highs }));
  ws.onmessage = (ev) => onFrame(JSON.parse(ev.data));
  ws.onclose = (ev) => {
    state.ws = null; state.synced = false;
    for (const [, r] of state.requests) r.reject(new Error("offline"));
    state.requests.clear();
    const terminal = ev.code === 1000 || ev.code === 1009 || (ev.code >= 4100 && ev.code < 4200);
    if (terminal && ev.code !== 1000) { signOut(); $("auth-error").textContent = "Please log in again."; return; }
    $("offline").hidden = false;
    setTimeout(connect, state.backoff + Math.random() * 250);
    state.backoff = Math.min(state.backoff * 2, 30000);
  };
}
setInterval(() => send({ type: "ping" }), 20000);

function onFrame(f) {
  switch (f.type) {
    case "welcome":
      state.backoff = 500; $("offline").hidden = true; break;
    case "synced":
      state.synced = true; refreshChats(); break;
    case "message": onMessage(f.message); break;
    case "sent": onSent(f); break;
    case "receipt": onReceipt(f); break;
    case "typing":
      state.typing.set(f.chat_id, { user_id: f.user_id, until: Date.now() + 3000 });
      renderHeader(); setTimeout(renderHeader, 3100); break;
    case "presence":
      if (f.req_id) settle(f); 
      state.presence.set(f.user_id, { online: f.online, last_seen: f.last_seen });
      renderHeader(); break;
    case "error":
      if (f.req_id) { settle(f); break; }
      if (f.client_msg_id) { const p = state.pending.get(f.client_msg_id); if (p) { p.failed = f.message; renderMessages(); } }
      break;
    default:
      if (f.req_id) settle(f);
  }
}
function settle(f) {
  const r = state.requests.get(f.req_id);
  if (!r) return;
  state.requests.delete(f.req_id);
  if (f.type === "error") r.reject(Object.assign(new Error(f.message), { code: f.code })); else r.resolve(f);
}

// ---------- chats ----------
function chatEntry(view) {
  const old = state.chats.get(view.chat_id);
  const entry = { ...view, messages: old ? old.messages : new Map(), oldest: old ? old.oldest : null, complete: old ? old.complete : false };
  state.chats.set(view.chat_id, entry);
  for (const m of view.members) state.names.set(m.user_id, m.display_name);
  if (state.highs[view.chat_id] === undefined) state.highs[view.chat_id] = view.last_seq;
  return entry;
}
async function refreshChats() {
  try {
    const r = await request({ type: "chats" });
    for (const v of r.chats) chatEntry(v);
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
  request({ type: "presence", user_id: peer(c).user_id }).catch(() => {});
}
function onMessage(m) {
  const c = state.chats.get(m.chat_id);
  if (!c) {
    // A chat this tab has not listed yet (resume backlog, or a new chat):
    // hold the message until the chat list arrives.
    send({ type: "delivered", chat_id: m.chat_id, seq: m.seq });
    state.early.push(m);
    if (state.ws && state.early.length === 1 && state.synced) refreshChats();
    return;
  }
  c.messages.set(m.seq, m);
  if (m.seq > (state.highs[m.chat_id] || 0)) state.highs[m.chat_id] = m.seq;
  if (m.seq > c.last_seq) { c.last_seq = m.seq; c.last_message = m; }
  if (m.client_msg_id && m.sender === state.me) state.pending.delete(m.client_msg_id);
  if (m.kind === "system") refreshMembers(m.chat_id);
  askPresence(c);
  send({ type: "delivered", chat_id: m.chat_id, seq: m.seq });
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
    const view = await rest("GET", "/v1/chats/" + chatId);
    chatEntry(view); renderList();
    if (state.open === chatId) { renderHeader(); renderMembers(); }
  } catch (err) {
    if (state.open === chatId) $("chat-error").textContent = err.message;
    state.chats.delete(chatId); renderList();
  }
}
function markRead(c) {
  if (c.last_seq > c.read_seq) { send({ type: "read", chat_id: c.chat_id, seq: c.last_seq }); c.read_seq = c.last_seq; }
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
  return { created: by + " created the group", joined: who + " joined", left: who + " left",
           added: by + " added " + who, removed: by + " removed " + who,
           promoted: who + " is now an admin" }[m.event] || m.event;
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
function el(tag, cls, text) { const e = document.createElement(tag); e.className = cls; e.textContent = text; return e; }

function tickStatus(c, seq) {
  const others = c.members.filter((m) => m.user_id !== state.me);
  if (others.length && others.every((m) => m.read_seq >= seq)) return "read";
  if (others.length && others.every((m) => m.delivered_seq >= seq)) return "delivered";
  return "sent";
}

function renderMessages(stickToBottom) {
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
      b.onclick = () => rest("DELETE", "/v1/groups/" + c.chat_id + "/members/" + m.user_id).then(() => refreshMembers(c.chat_id)).catch((e) => { $("chat-error").textContent = e.message; });
      li.append(b);
    }
    ul.append(li);
  }
  $("add-member").hidden = !admin;
  $("invite-box").hidden = !admin;
  if (admin) showInvite(c.chat_id, "invite");
}
// An invite link carries the group id and the group's invite code; only
// admins see the code, and a new one makes the old link stop working.
function inviteLink(chat_id, code) { return location.origin + "/#join=" + chat_id + "/" + code; }
function parseInvite(text) {
  const m = /([0-9a-f-]{36})\/([A-Za-z0-9_-]{22})/.exec(text);
  return m && { chat_id: m[1], invite: m[2] };
}
async function showInvite(chat_id, type) {
  try {
    const r = await request({ type, chat_id });
    if (state.open === chat_id) $("group-invite").textContent = inviteLink(chat_id, r.invite);
  } catch (err) { $("chat-error").textContent = err.message; }
}
$("reset-invite").addEventListener("click", () => showInvite(state.open, "reset_invite"));

// ---------- opening a chat, history ----------
async function openChat(id) {
  state.open = id;
  $("app").classList.add("has-chat");
  $("chat-error").textContent = "";
  let c = state.chats.get(id);
  if (!c) {
    $("messages").replaceChildren(); $("chat-title").textContent = ""; $("chat-status").textContent = "";
    try { c = chatEntry(await rest("GET", "/v1/chats/" + id)); }
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
    const frame = { type: "history", chat_id: c.chat_id, limit: 30 };
    const oldest = Math.min(...[...c.messages.keys()], Infinity);
    if (oldest !== Infinity) frame.before = oldest;
    const r = await request(frame);
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
  sendFrame({ type: "send", chat_id: state.open, client_msg_id: id, body: text });
});
// Sends a `send` frame now, or once connected: retries reuse the
// client_msg_id, so the server stores the message once (idempotent).
function sendFrame(frame) {
  if (send(frame)) return;
  const retry = setInterval(() => { if (send(frame)) clearInterval(retry); }, 500);
}
$("text").addEventListener("input", () => {
  if (state.open && Date.now() - state.lastTypingSent > 2000) {
    state.lastTypingSent = Date.now(); send({ type: "typing", chat_id: state.open });
  }
});

// ---------- creating chats and groups ----------
async function lookup(phone) { return (await request({ type: "lookup", phone: phone.trim() })).user_id; }
$("new-direct").addEventListener("submit", async (e) => {
  e.preventDefault(); $("side-error").textContent = "";
  try {
    const r = await request({ type: "open_direct", phone: $("direct-phone").value.trim() });
    chatEntry(r.chat); e.target.reset(); location.hash = "chat=" + r.chat.chat_id;
  } catch (err) { $("side-error").textContent = err.message; }
});
$("new-group").addEventListener("submit", async (e) => {
  e.preventDefault(); $("side-error").textContent = "";
  try {
    const phones = $("group-phones").value.split(",").map((p) => p.trim()).filter(Boolean);
    const members = [];
    for (const p of phones) members.push(await lookup(p));
    const r = await request({ type: "create_group", title: $("group-title").value.trim(), members });
    chatEntry(r.chat); e.target.reset(); location.hash = "chat=" + r.chat.chat_id;
  } catch (err) { $("side-error").textContent = err.message; }
});
$("join-group").addEventListener("submit", async (e) => {
  e.preventDefault(); $("side-error").textContent = "";
  try {
    const invite = parseInvite($("join-invite").value);
    if (!invite) throw new Error("paste a whole invite link");
    const r = await request({ type: "join", ...invite });
    chatEntry(r.chat); e.target.reset(); location.hash = "chat=" + r.chat.chat_id;
  } catch (err) { $("side-error").textContent = err.message; }
});
$("members-toggle").addEventListener("click", () => { $("members").hidden = !$("members").hidden; renderMembers(); });
$("add-member").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const user_id = await lookup($("add-phone").value);
    const r = await request({ type: "add_member", chat_id: state.open, user_id });
    chatEntry(r.chat); e.target.reset(); renderMembers(); renderHeader();
  } catch (err) { $("chat-error").textContent = err.message; }
});
$("leave").addEventListener("click", async () => {
  try {
    await request({ type: "leave", chat_id: state.open });
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
