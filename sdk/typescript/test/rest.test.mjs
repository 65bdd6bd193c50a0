// The REST half of the SDK against a real standalone server: accounts,
// chats, groups, history, receipts, devices, media — and typed refusals.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { ConfabError, Rest } from "../dist/index.js";
import { PASSWORD, user } from "./helpers.mjs";
import { Server, phone } from "./server.mjs";

let server;
before(async () => (server = await Server.start()));
after(() => server?.stop());

const code = (c) => (e) => e instanceof ConfabError && e.code === c;

test("accounts: register, log in, typed refusals, log out", async () => {
  const rest = new Rest({ url: server.url });
  const p = phone();
  const me = await rest.register({ phone: p, display_name: "Ann", password: PASSWORD });
  assert.equal(me.phone, p);
  assert.equal("password_hash" in me, false, "no secret in the answer");
  await assert.rejects(rest.register({ phone: p, display_name: "Ann", password: PASSWORD }), code("conflict"));
  await assert.rejects(rest.register({ phone: "12", display_name: "Ann", password: PASSWORD }), (e) => code("invalid")(e) && e.status === 400);
  await assert.rejects(rest.login(p, "wrong password"), (e) => code("bad_credentials")(e) && e.status === 401);
  await assert.rejects(rest.chats(), code("unauthenticated"), "no token yet");
  const session = await rest.login(p, PASSWORD);
  assert.equal(session.user_id, me.id);
  assert.deepEqual(await rest.chats(), []);
  await rest.logout();
  await assert.rejects(new Rest({ url: server.url, token: session.token }).chats(), code("token_revoked"));
});

test("a server that is not there is a network error", async () => {
  const rest = new Rest({ url: "http://127.0.0.1:9" });
  await assert.rejects(rest.login("+15550000000", PASSWORD), code("network"));
});

test("direct chats, sends, history pages and receipts", async () => {
  const ann = await user(server, "Ann");
  const bob = await user(server, "Bob");
  const chat = await ann.rest.direct(bob.phone);
  assert.equal((await ann.rest.direct(bob.phone)).chat_id, chat.chat_id, "one chat per pair");
  for (let i = 1; i <= 5; i++) {
    const sent = await ann.rest.send(chat.chat_id, { client_msg_id: `c-${i}`, body: `m${i}` });
    assert.equal(sent.seq, i);
  }
  const again = await ann.rest.send(chat.chat_id, { client_msg_id: "c-3", body: "m3" });
  assert.deepEqual([again.seq, again.duplicate], [3, true], "a retry is answered from the store");
  const page = await bob.rest.messages(chat.chat_id, { limit: 2 });
  assert.deepEqual(page.messages.map((m) => m.seq), [5, 4]);
  const rest = await bob.rest.messages(chat.chat_id, { before: page.next_before, limit: 10 });
  assert.deepEqual(rest.messages.map((m) => m.seq), [3, 2, 1]);
  assert.equal(rest.next_before, null);
  await assert.rejects(bob.rest.messages(chat.chat_id, { limit: 500 }), code("invalid"));
  const view = await bob.rest.receipts(chat.chat_id, { read: 5 });
  assert.deepEqual([view.read_seq, view.delivered_seq, view.unread], [5, 5, 0]);
  const presence = await ann.rest.presence(bob.id);
  assert.equal(presence.user_id, bob.id);
  const stranger = await user(server, "Eve");
  await assert.rejects(stranger.rest.messages(chat.chat_id), code("not_member"));
  await assert.rejects(stranger.rest.presence(ann.id), code("not_found"));
});

test("groups: create, invite, join, members, leave", async () => {
  const ann = await user(server, "Ann");
  const bob = await user(server, "Bob");
  const cat = await user(server, "Cat");
  const group = await ann.rest.createGroup("Climbing", [bob.id]);
  assert.deepEqual(group.members.map((m) => m.role).sort(), ["admin", "member"]);
  const { invite } = await ann.rest.invite(group.chat_id);
  await assert.rejects(bob.rest.invite(group.chat_id), code("forbidden"));
  await assert.rejects(cat.rest.join(group.chat_id, "x".repeat(22)), code("forbidden"));
  assert.equal((await cat.rest.join(group.chat_id, invite)).members.length, 3);
  const fresh = await ann.rest.resetInvite(group.chat_id);
  assert.notEqual(fresh.invite, invite);
  await ann.rest.removeMember(group.chat_id, cat.id);
  await assert.rejects(cat.rest.join(group.chat_id, fresh.invite), code("banned"));
  assert.equal((await ann.rest.addMember(group.chat_id, cat.id)).members.length, 3);
  await bob.rest.leave(group.chat_id);
  assert.equal((await ann.rest.chat(group.chat_id)).members.length, 2);
  assert.equal((await ann.rest.user(cat.phone)).id, cat.id);
  await assert.rejects(ann.rest.user("+19999999999"), code("not_found"));
});

test("devices: a platform without credentials is refused, typed", async () => {
  const ann = await user(server, "Ann");
  await assert.rejects(ann.rest.putDevice("phone-1", { platform: "fcm", token: "t" }), code("invalid"));
  assert.deepEqual(await ann.rest.devices(), []);
  await ann.rest.deleteDevice("phone-1");
});

test("media: upload with progress, send, signed link", async () => {
  const ann = await user(server, "Ann");
  const bob = await user(server, "Bob");
  const chat = await ann.rest.direct(bob.phone);
  const bytes = new Uint8Array(300 * 1024).map((_, i) => i % 251);
  const progress = [];
  const up = await ann.rest.upload(bytes, {
    name: "notes.bin",
    contentType: "application/octet-stream",
    onProgress: (f) => progress.push(f),
  });
  assert.equal(up.kind, "file");
  assert.equal(up.size, bytes.length);
  assert.ok(progress.length >= 4, `progress reported in steps: ${progress}`);
  assert.equal(progress.at(-1), 1);
  assert.ok(progress.every((f, i) => i === 0 || f >= progress[i - 1]), "progress only grows");
  const sent = await ann.rest.send(chat.chat_id, { client_msg_id: "f-1", kind: "file", media_id: up.media_id, body: "the notes" });
  const [m] = (await bob.rest.messages(chat.chat_id)).messages;
  assert.deepEqual([m.seq, m.kind, m.name, m.caption], [sent.seq, "file", "notes.bin", "the notes"]);
  const link = await bob.rest.mediaLink(up.media_id, 60);
  const got = new Uint8Array(await (await fetch(link.url)).arrayBuffer());
  assert.deepEqual(got, bytes);
  await assert.rejects(ann.rest.upload(new TextEncoder().encode("not a picture"), { contentType: "image/png" }), code("unsupported_media_type"));
});
