// How many messages a second one SDK client sustains against a standalone
// server: one device sends TOTAL text messages, round robin into CHATS 1:1
// chats, as fast as its send queue allows (acknowledged = stored), while
// one device of each peer receives them. Prints acks/s, deliveries/s and
// the CPU each side used (a chat is one sequencer that stores each message
// durably before its ack, so more chats measure more of the client).
//
//   CONFAB_BIN=path/to/chat-runtime npm run bench [-- TOTAL [WINDOW [CHATS]]]
import { ConfabClient, Rest } from "../dist/index.js";
import { Server } from "../test/server.mjs";

const TOTAL = Number(process.argv[2] ?? 20_000);
const WINDOW = Number(process.argv[3] ?? 64);
const CHATS = Number(process.argv[4] ?? 1);
const PASSWORD = "bench password";

// The server's per-user rate limit (100/s by default) would measure itself.
const server = await Server.start(["--rate", "1000000", "--burst", "1000000"]);
try {
  const login = async (phone, name) => {
    const rest = new Rest({ url: server.url });
    await rest.register({ phone, display_name: name, password: PASSWORD });
    return { rest, session: await rest.login(phone, PASSWORD) };
  };
  const ann = await login("+15550000000", "Ann");
  const sender = new ConfabClient({ url: server.url, token: ann.session.token, outbox: { window: WINDOW } });
  let received = 0;
  let allReceived;
  const done = new Promise((r) => (allReceived = r));
  const chats = [];
  const receivers = [];
  for (let i = 1; i <= CHATS; i++) {
    const phone = `+1555100${String(i).padStart(4, "0")}`;
    const peer = await login(phone, `Peer ${i}`);
    chats.push((await ann.rest.direct(phone)).chat_id);
    const receiver = new ConfabClient({ url: server.url, token: peer.session.token });
    receiver.on("message", () => {
      received += 1;
      if (received === TOTAL) allReceived(performance.now());
    });
    await receiver.connect();
    receivers.push(receiver);
  }
  await sender.connect();

  const serverCpu0 = await server.cpuSeconds();
  const clientCpu0 = process.cpuUsage();
  const started = performance.now();
  const sends = [];
  for (let i = 0; i < TOTAL; i++) sends.push(sender.send(chats[i % CHATS], `message ${i}`));
  await Promise.all(sends);
  const acked = performance.now();
  const delivered = await done;
  const clientCpu = process.cpuUsage(clientCpu0);
  const serverCpu = (await server.cpuSeconds()) - serverCpu0;
  const rate = (ms) => Math.round(TOTAL / (ms / 1000));
  const secs = (delivered - started) / 1000;
  console.log(`messages: ${TOTAL}, send window: ${WINDOW}, chats: ${CHATS}`);
  console.log(`sender: ${rate(acked - started)} msgs/s acknowledged (stored)`);
  console.log(`receiver: ${rate(delivered - started)} msgs/s delivered`);
  // Where the time went: the sender and the receivers share this process.
  const cores = (cpu) => (cpu / secs).toFixed(2);
  console.log(`CPU: SDK clients ${cores((clientCpu.user + clientCpu.system) / 1e6)} cores, server ${cores(serverCpu)} cores`);
  sender.close();
  for (const r of receivers) r.close();
} finally {
  await server.stop();
}
