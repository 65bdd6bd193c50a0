// The "Build a client" snippet of docs/protocol.md, as a reader would use
// it: type-checked against the SDK's types (strict), then run against a
// real server, which must print what it promises.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { after, before, test } from "node:test";
import ts from "typescript";

import { Server } from "./server.mjs";

const DOC = new URL("../../../docs/protocol.md", import.meta.url);
const DIST = fileURLToPath(new URL("../dist/index.js", import.meta.url));

/** The ```ts block under the "Build a client" heading. */
async function snippet() {
  const doc = await readFile(DOC, "utf8");
  const section = doc.split(/^## Build a client$/m)[1];
  assert.ok(section, "docs/protocol.md has a `## Build a client` section");
  const block = /^```ts\n([\s\S]*?)^```$/m.exec(section);
  assert.ok(block, "the section has a ```ts block");
  return block[1];
}

/** `text` with `from` replaced, which must be there. */
function swap(text, from, to) {
  assert.ok(text.includes(from), `the snippet uses ${from}`);
  return text.replaceAll(from, to);
}

let server;
let dir;
before(async () => {
  server = await Server.start();
  dir = await mkdtemp(join(tmpdir(), "confab-snippet-"));
});
after(async () => {
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test("the Build a client snippet type-checks and runs", async () => {
  let source = await snippet();
  const lines = source.trim().split("\n").length;
  assert.ok(lines <= 30, `about 20 lines, not ${lines}`);
  source = swap(source, '"@confab/client"', JSON.stringify(DIST));
  source = swap(source, '"http://127.0.0.1:8080"', JSON.stringify(server.url));
  const file = join(dir, "client.ts");
  await writeFile(file, source);
  await writeFile(join(dir, "package.json"), '{"type":"module"}');
  const program = ts.createProgram([file], {
    strict: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ES2022,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    lib: ["lib.es2022.d.ts", "lib.dom.d.ts"],
    types: [],
    skipLibCheck: true,
    outDir: dir,
  });
  const emitted = program.emit();
  const problems = [...ts.getPreEmitDiagnostics(program), ...emitted.diagnostics].map((d) =>
    ts.flattenDiagnosticMessageText(d.messageText, "\n"),
  );
  assert.deepEqual(problems, [], "the snippet type-checks");
  const run = promisify(execFile);
  const { stdout } = await run(process.execPath, ["--experimental-websocket", join(dir, "client.js")], {
    timeout: 20_000,
  });
  assert.match(stdout, /^stored at seq 1$/m);
  assert.match(stdout, /^Bob got: hi Bob!$/m);
});
