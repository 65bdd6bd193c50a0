// The live session against a real standalone server: send and receive,
// receipts, typing, presence, requests, history, resume from stored
// watermarks, and what terminal close codes do.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { ConfabClient, ConfabError, MemoryStore } from "../dist/index.js";
import { device, user } from "./helpers.mjs";
import { Server, until } from "./server.mjs";

let server;
before(async () => (server = await Server.start()));
after(() => server?.stop());

const code = (c) => (e) => e instanceof ConfabError && e.code === c;

test("send, receive, receipts, typing and presence between two devices", async () => {
  const ann = await user(server, "Ann");
  const bob = await user(server, "Bob");
  const a = await device(server, ann);
  const b = await device(server, bob);
  const chat = await a.client.openDirect(bob.phone);
  const sent = await a.client.send(chat.chat_id, "hi Bob");
  assert.deepEqual([sent.seq, sent.duplicate], [1, false]);
  const [m] = await until("Bob's message", () => b.got.messages.length && b.got.messages);
  assert.deepEqual([m.chat_id, m.seq, m.kind, m.body, m.sender], [chat.chat_id, 1, "text", "hi Bob", ann.id]);
  // Bob's device acknowledged it by itself; Ann sees ✓✓, then blue when read.
  await until("delivered", () => a.got.receipts.some((r) => r.user_id === bob.id && r.delivered_seq === 1));
  b.client.markRead(chat.chat_id, 1);
  await until("read", () => a.got.receipts.some((r) => r.user_id === bob.id && r.read_seq === 1));
  b.client.typing(chat.chat_id);
  await until("typing", () => a.got.typing.some((t) => t.user_id === bob.id));
  assert.equal((await a.client.presence(bob.id)).online, true);
  b.client.close();
  await until("Bob offline", () => a.got.presence.some((p) => p.user_id === bob.id && !p.online));
  a.client.close();
});

test("requests: chats, groups, history pages, lookups, typed refusals", async () => {
  const ann = await user(server, "Ann");
  const bob = await user(server, "Bob");
  const a = await device(server, ann);
  const { user_id } = await a.client.lookup(bob.phone);
  const group = await a.client.createGroup("Trip", [user_id]);
  for (let i = 1; i <= 7; i++) await a.client.send(group.chat_id, `m${i}`);
  const seqs = [];
  for await (const page of a.client.historyPages(group.chat_id, 3)) seqs.push(page.map((m) => m.seq));
  assert.deepEqual(seqs, [[8, 7, 6], [5, 4, 3], [2, 1]], "the group's creation is seq 1");
  assert.equal((await a.client.chats())[0].chat_id, group.chat_id);
  assert.equal((await a.client.invite(group.chat_id)).length, 22);
  await assert.rejects(a.client.history(group.chat_id, { limit: 0 }), code("invalid"));
  await assert.rejects(a.client.openDirect("+19999999999"), code("not_found"));
  await assert.rejects(a.client.send(group.chat_id, ""), code("invalid"), "checked before it is queued");
  await assert.rejects(a.client.send(group.chat_id, "x".repeat(16_385)), code("invalid"));
  await assert.rejects(a.client.send("0191e3a0-7b3c-7cc4-9d2e-5f6a7b8c9d0e", "hello?"), code("not_found"));
  a.client.close();
  await assert.rejects(a.client.send(group.chat_id, "after close"), code("closed"));
});

test("a device resumes from its stored watermarks and shows each message once", async () => {
  const ann = await user(server, "Ann");
  const bob = await user(server, "Bob");
  const a = await device(server, ann);
  const chat = await a.client.openDirect(bob.phone);
  const storage = new MemoryStore();
  const b1 = await device(server, bob, { storage });
  for (let i = 1; i <= 3; i++) await a.client.send(chat.chat_id, `early ${i}`);
  await until("three messages", () => b1.got.messages.length === 3);
  await until("stored watermark", async () => (await storage.load())[chat.chat_id] === 3);
  b1.client.close();
  for (let i = 1; i <= 4; i++) await a.client.send(chat.chat_id, `late ${i}`);
  // The same device again: it resumes after seq 3, nothing before.
  const b2 = await device(server, bob, { storage });
  await until("the backlog", () => b2.got.messages.length === 4);
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(b2.got.messages.map((m) => m.body), ["late 1", "late 2", "late 3", "late 4"]);
  assert.deepEqual(b2.client.watermarks(), { [chat.chat_id]: 7 });
  a.client.close();
  b2.client.close();
});

test("terminal close codes stop the session with a typed error", async () => {
  const bad = new ConfabClient({ url: server.url, token: "not-a-token" });
  const states = [];
  bad.on("state", (s) => states.push(s.state));
  await assert.rejects(bad.connect(), (e) => code("unauthenticated")(e) && e.closeCode === 4100);
  assert.equal(bad.state, "closed");
  await new Promise((r) => setTimeout(r, 800));
  assert.deepEqual(states, ["connecting", "closed"], "no reconnect after a terminal close");

  const ann = await user(server, "Ann");
  await ann.rest.logout();
  const revoked = new ConfabClient({ url: server.url, token: ann.token });
  await assert.rejects(revoked.connect(), (e) => code("token_revoked")(e) && e.closeCode === 4103);
});

test("a connection that drops is reconnected and resumed", async () => {
  const ann = await user(server, "Ann");
  const bob = await user(server, "Bob");
  const a = await device(server, ann, { backoff: { initialMs: 50 } });
  const b = await device(server, bob);
  const chat = await a.client.openDirect(bob.phone);
  // A second login's socket is another device; here the same device's
  // socket is cut under it (as a network drop would).
  a.client["ws"].close(3000, "test drop");
  await until("reconnecting", () => a.got.states.some((s) => s.state === "connecting" && s.closeCode === 3000));
  const sent = await a.client.send(chat.chat_id, "after the drop");
  assert.equal(sent.seq, 1);
  await until("Bob got it", () => b.got.messages.some((m) => m.body === "after the drop"));
  await until("open again", () => a.client.state === "open");
  a.client.close();
  b.client.close();
});
