// Users and sessions for the tests against a real server.
import { ConfabClient, Rest } from "../dist/index.js";
import { phone } from "./server.mjs";

export const PASSWORD = "correct horse battery";

/** A registered, signed-in user: their REST client and details. */
export async function user(server, name) {
  const rest = new Rest({ url: server.url });
  const p = phone();
  const view = await rest.register({ phone: p, display_name: name, password: PASSWORD });
  const session = await rest.login(p, PASSWORD);
  return { rest, id: view.id, phone: p, name, token: session.token };
}

/** A connected session of `u`, collecting what it receives. */
export async function device(server, u, options = {}) {
  const client = new ConfabClient({ url: server.url, token: u.token, ...options });
  const got = { messages: [], receipts: [], typing: [], presence: [], states: [] };
  client.on("message", (m) => got.messages.push(m));
  client.on("receipt", (r) => got.receipts.push(r));
  client.on("typing", (t) => got.typing.push(t));
  client.on("presence", (p) => got.presence.push(p));
  client.on("state", (s) => got.states.push(s));
  await client.connect();
  return { client, got };
}
