// The SDK's size as an app would ship it: the whole of dist/ bundled into
// one ESM file and minified (esbuild), then gzipped.
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

const out = await build({
  entryPoints: [new URL("../dist/index.js", import.meta.url).pathname],
  bundle: true,
  minify: true,
  format: "esm",
  write: false,
  // An app bundles the SDK for browsers; nothing of node's is in it.
  platform: "browser",
});
const bytes = out.outputFiles[0].contents;
const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
console.log(`@confab/client: ${kib(bytes.length)} minified, ${kib(gzipSync(bytes, { level: 9 }).length)} minified + gzip`);
