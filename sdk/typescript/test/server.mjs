// A real `chat-runtime standalone` for the tests: the binary named by
// CONFAB_BIN (a missing or unset CONFAB_BIN fails the run, loudly), on a
// free loopback port, with a fresh data folder. kill() is kill -9; start()
// again brings it back on the same port and data (tokens stay valid).
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export function binary() {
  const bin = process.env.CONFAB_BIN;
  if (!bin) {
    throw new Error(
      "CONFAB_BIN is not set: build the server (cargo build -p chat-runtime) and set CONFAB_BIN to its binary",
    );
  }
  if (!existsSync(bin)) throw new Error(`CONFAB_BIN=${bin}: no such file`);
  return bin;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export class Server {
  /** Starts a server; `args` are extra `standalone` flags. */
  static async start(args = []) {
    const dir = await mkdtemp(join(tmpdir(), "confab-sdk-"));
    const server = new Server(dir, await freePort(), args);
    await server.start();
    return server;
  }

  constructor(dir, port, args) {
    this.dir = dir;
    this.port = port;
    this.args = args;
    this.url = `http://127.0.0.1:${port}`;
    this.log = [];
  }

  async start() {
    const args = ["standalone", "--listen", `127.0.0.1:${this.port}`, "--data-dir", join(this.dir, "data"), ...this.args];
    const proc = spawn(binary(), args, { stdio: ["ignore", "pipe", "pipe"] });
    this.proc = proc;
    const keep = (chunk) => {
      this.log.push(...String(chunk).split("\n"));
      this.log.splice(0, Math.max(0, this.log.length - 200));
    };
    proc.stdout.on("data", keep);
    proc.stderr.on("data", keep);
    this.exited = new Promise((resolve) => proc.on("exit", resolve));
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) break;
      try {
        if ((await fetch(`${this.url}/readyz`)).ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    proc.kill("SIGKILL");
    throw new Error(`the server did not become ready; its log:\n${this.log.join("\n")}`);
  }

  /** CPU time the server process has used, in seconds (Linux). */
  async cpuSeconds() {
    const stat = await readFile(`/proc/${this.proc.pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime, fields 14 and 15 of stat(5), in clock ticks (100 a second).
    return (Number(fields[11]) + Number(fields[12])) / 100;
  }

  /** kill -9: no shutdown, no flush; only what is durably stored survives. */
  async kill() {
    this.proc.kill("SIGKILL");
    await this.exited;
  }

  async stop() {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill("SIGTERM");
      await this.exited;
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}

let phones = 0;
/** A phone number no other user of this test run has. */
export function phone() {
  phones += 1;
  return `+1555${String(process.pid % 10000).padStart(4, "0")}${String(phones).padStart(4, "0")}`;
}

/** Resolves when `check()` is truthy; fails after `ms` with `what`. */
export async function until(what, check, ms = 15_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const v = await check();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}
