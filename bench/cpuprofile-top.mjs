#!/usr/bin/env node
/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`, e.g. `node bench/run.mjs --profile DIR`):
 * the functions with the most self time, as a share of the busy (non-idle) time.
 *
 *   node bench/cpuprofile-top.mjs FILE.cpuprofile [N=25]
 */
import { readFileSync } from "node:fs";
import path from "node:path";

const [file, topArg] = process.argv.slice(2);
if (file === undefined) {
  console.error("usage: node bench/cpuprofile-top.mjs FILE.cpuprofile [N]");
  process.exit(2);
}
const top = Number(topArg ?? 25);
const profile = JSON.parse(readFileSync(file, "utf8"));

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
// timeDeltas[i] is the time between sample i-1 and sample i: charge it to sample i-1's node.
const selfUs = new Map();
for (let i = 1; i < profile.samples.length; i++) {
  const id = profile.samples[i - 1];
  selfUs.set(id, (selfUs.get(id) ?? 0) + profile.timeDeltas[i]);
}

const where = (frame) => {
  if (!frame.url) return "";
  const url = frame.url.startsWith("file://") ? path.relative(process.cwd(), new URL(frame.url).pathname) : frame.url;
  return `${url}:${frame.lineNumber + 1}`;
};

const rows = new Map();
let total = 0;
let idle = 0;
for (const [id, us] of selfUs) {
  const frame = byId.get(id).callFrame;
  const name = frame.functionName || "(anonymous)";
  if (name === "(idle)") {
    idle += us;
    continue;
  }
  total += us;
  const key = `${name}  ${where(frame)}`;
  rows.set(key, (rows.get(key) ?? 0) + us);
}

const ms = (us) => (us / 1000).toFixed(1);
console.log(`${file}`);
console.log(`busy ${ms(total)} ms, idle ${ms(idle)} ms; self time as a share of busy time:`);
for (const [key, us] of [...rows].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`${((us / total) * 100).toFixed(1).padStart(5)}%  ${ms(us).padStart(9)} ms  ${key}`);
}
