// Builds the CLI bundle (dist/cli.js) and the capture writer's worker (dist/capture-worker.js).
// Dependencies stay external: node_modules is resolved at run time.
import { chmodSync } from "node:fs";
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

await Promise.all([
  build({ ...common, entryPoints: ["src/cli/main.ts"], outfile: "dist/cli.js", banner: { js: "#!/usr/bin/env node" } }),
  build({ ...common, entryPoints: ["src/store/writer-worker.ts"], outfile: "dist/capture-worker.js" }),
]);
chmodSync("dist/cli.js", 0o755);
