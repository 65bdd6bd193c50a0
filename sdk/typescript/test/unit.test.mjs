// The SDK's pure parts: close-code classes, backoff, the dedupe cursor, the
// send queue and the watermark stores. No server needed.
import assert from "node:assert/strict";
import { test } from "node:test";
import { IDBFactory } from "fake-indexeddb";

import { Backoff, closeAction, ConfabError, Cursor, IndexedDbStore, MemoryStore } from "../dist/index.js";
import { Outbox } from "../dist/outbox.js";

test("close codes: the documented classes", () => {
  for (const code of [1000, 1009, 4100, 4101, 4102, 4103]) assert.equal(closeAction(code), "terminal", code);
  for (const code of [1006, 1011, 1012, 4000, 4001, 4002, 4003]) assert.equal(closeAction(code), "reconnect", code);
});

test("backoff doubles from 0.5 s to 30 s, jittered within [d/2, d], and resets", () => {
  let r = 0;
  const b = new Backoff({ random: () => r });
  assert.deepEqual([b.next(), b.next(), b.next()], [250, 500, 1000]);
  r = 0.999999;
  for (let i = 0; i < 20; i++) b.next();
  assert.equal(b.next(), 30_000);
  b.reset();
  r = 0.5;
  assert.equal(b.next(), 375);
});

test("cursor: each (chat, seq) once; own sends close gaps; synced raises", () => {
  const c = new Cursor({ a: 3 });
  assert.equal(c.message("a", 3), false, "held before the restart");
  assert.equal(c.message("a", 4), true);
  assert.equal(c.message("a", 4), false, "a resume sent it again");
  c.sent("a", 6); // own message, before someone else's 5 arrived
  assert.equal(c.watermark("a"), 4);
  assert.equal(c.message("a", 5), true);
  assert.equal(c.watermark("a"), 6, "5 arrived: the own 6 counts now");
  assert.equal(c.message("a", 6), false, "an own message sent back on resume");
  c.sent("b", 9); // a chat with no watermark: the backlog may still bring 1..8
  assert.equal(c.watermark("b"), undefined);
  assert.equal(c.message("b", 8), true);
  assert.equal(c.watermark("b"), 9);
  c.synced({ z: 12 });
  assert.deepEqual(c.watermarks(), { a: 6, b: 9, z: 12 });
});

test("memory store raises, never lowers, and clears", async () => {
  const s = new MemoryStore();
  await s.save({ a: 5, b: 1 });
  await s.save({ a: 3 });
  assert.deepEqual(await s.load(), { a: 5, b: 1 });
  await s.clear();
  assert.deepEqual(await s.load(), {});
});

test("IndexedDB store: survives a reopen, raises only", async () => {
  const indexedDB = new IDBFactory();
  const s = new IndexedDbStore({ name: "confab-u1", indexedDB });
  await s.save({ a: 5, b: 2 });
  await s.save({ a: 4, b: 3 });
  await s.close();
  const again = new IndexedDbStore({ name: "confab-u1", indexedDB });
  assert.deepEqual(await again.load(), { a: 5, b: 3 });
  await again.clear();
  assert.deepEqual(await again.load(), {});
  const other = new IndexedDbStore({ name: "confab-u2", indexedDB });
  assert.deepEqual(await other.load(), {}, "one database per user");
});

const frame = (id) => ({ type: "send", chat_id: "c", client_msg_id: id, kind: "text", body: id });
const sent = (id, seq) => ({ type: "sent", chat_id: "c", client_msg_id: id, seq, sent_at: 0, duplicate: false });

test("outbox: a window of sends, in order; everything again after a reconnect", async () => {
  const wire = [];
  const o = new Outbox((f) => wire.push(f.client_msg_id), { window: 2 });
  const p1 = o.add(frame("m1"));
  const rest = [o.add(frame("m2")), o.add(frame("m3"))];
  assert.deepEqual(wire, [], "nothing goes out before a connection");
  o.up();
  assert.deepEqual(wire, ["m1", "m2"], "two at a time");
  assert.equal(o.sent(sent("m1", 1)), true);
  assert.deepEqual((await p1).seq, 1);
  assert.deepEqual(wire, ["m1", "m2", "m3"]);
  o.down();
  o.up();
  assert.deepEqual(wire.slice(3), ["m2", "m3"], "unanswered sends go again, in order");
  assert.equal(o.add(frame("m2")), o.add(frame("m2")), "the same id is one send");
  o.fail(new ConfabError("closed", "bye"));
  assert.equal(o.size, 0);
  for (const p of rest) await assert.rejects(p, (e) => e.code === "closed");
});

test("outbox: retries what the server says to retry, fails the rest", async () => {
  const wire = [];
  const o = new Outbox((f) => wire.push(f.client_msg_id), { retryAfterMs: 5 });
  o.up();
  const limited = o.add(frame("m1"));
  const bad = o.add(frame("m2"));
  o.refused("m1", new ConfabError("rate_limited", "slow down", { retryAfterMs: 10 }));
  o.refused("m2", new ConfabError("not_member", "no"));
  await assert.rejects(bad, (e) => e instanceof ConfabError && e.code === "not_member");
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(wire, ["m1", "m2", "m1"], "m1 went again after its wait");
  o.sent(sent("m1", 7));
  assert.equal((await limited).seq, 7);
});
