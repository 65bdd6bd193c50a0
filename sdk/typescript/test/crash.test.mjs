// kill -9 with sends in flight: the server dies mid-stream and comes back
// on the same data. Every send the SDK reports stored arrives at the other
// device exactly once, in the order it was sent, with the seq it was given;
// the sends in flight at the kill are retried until stored, once each.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { device, user } from "./helpers.mjs";
import { Server, until } from "./server.mjs";

const TOTAL = 300;

let server;
before(async () => (server = await Server.start(["--rate", "5000", "--burst", "5000"])));
after(() => server?.stop());

test("kill -9 and restart with sends in flight: every acked message once, in order", async () => {
  const ann = await user(server, "Ann");
  const bob = await user(server, "Bob");
  const fast = { backoff: { initialMs: 100, maxMs: 1000 } };
  const a = await device(server, ann, { ...fast, outbox: { window: 16 } });
  const b = await device(server, bob, fast);
  const chat = await a.client.openDirect(bob.phone);

  const acked = new Map(); // body -> seq
  let duplicates = 0;
  const sends = [];
  for (let i = 0; i < TOTAL; i++) {
    const body = `m${String(i).padStart(3, "0")}`;
    sends.push(
      a.client.send(chat.chat_id, body).then((s) => {
        acked.set(body, s.seq);
        if (s.duplicate) duplicates += 1;
      }),
    );
  }
  await until("a third acknowledged", () => acked.size >= TOTAL / 3);
  const inFlight = a.client.unsent;
  await server.kill();
  const ackedBeforeKill = acked.size;
  await new Promise((r) => setTimeout(r, 300));
  await server.start();
  await Promise.all(sends);

  await until("Bob has them all", () => b.got.messages.length >= TOTAL, 30_000);
  await new Promise((r) => setTimeout(r, 300)); // stragglers would show now
  const got = b.got.messages;
  assert.equal(got.length, TOTAL, "each message once");
  assert.deepEqual(got.map((m) => m.seq), Array.from({ length: TOTAL }, (_, i) => i + 1), "gapless seq order");
  const bodies = Array.from({ length: TOTAL }, (_, i) => `m${String(i).padStart(3, "0")}`);
  assert.deepEqual(got.map((m) => m.body), bodies, "in the order sent");
  for (const m of got) assert.equal(acked.get(m.body), m.seq, `${m.body} arrived with the seq it was acked at`);
  assert.ok(inFlight > 0 && ackedBeforeKill < TOTAL, "the kill came with sends in flight");
  console.log(`# acked before the kill: ${ackedBeforeKill}; queued then: ${inFlight}; retries answered as duplicates: ${duplicates}`);
  a.client.close();
  b.client.close();
});
