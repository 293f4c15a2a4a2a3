// Builds the CLI (dist/cli.js loading dist/socksmith.js) and its workers: the capture writer
// (dist/capture-worker.js) and the watchdog (dist/watchdog-worker.js).
// Dependencies stay external: node_modules is resolved at run time.
import { chmodSync, rmSync } from "node:fs";
import { build } from "esbuild";

const common = {
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  packages: "external",
  jsx: "automatic",
  sourcemap: true,
  logLevel: "warning",
};

rmSync("dist", { recursive: true, force: true });
await Promise.all([
  // Split, so that the TUI (Ink: about half a second to import) loads only when it is opened.
  build({ ...common, entryPoints: { socksmith: "src/cli/main.ts" }, outdir: "dist", splitting: true, chunkNames: "chunk-[hash]" }),
  build({ ...common, entryPoints: ["src/store/writer-worker.ts"], outfile: "dist/capture-worker.js" }),
  build({ ...common, entryPoints: ["src/cli/watchdog-worker.ts"], outfile: "dist/watchdog-worker.js" }),
]);
// The binary (src/cli/launch.ts) sets NODE_ENV and caps the young generation before it loads
// dist/socksmith.js.
await build({ ...common, entryPoints: { cli: "src/cli/launch.ts" }, outdir: "dist", banner: { js: "#!/usr/bin/env node" } });
chmodSync("dist/cli.js", 0o755);
