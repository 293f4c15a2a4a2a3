/**
 * Tunnel open/close cycles against the real CLI with capture on: 10 cycles of 3,000 CONNECT
 * tunnels (each echoes 4 KiB, then all close); the proxy's RSS after cycle 10 is within 25 % of
 * its RSS after cycle 2 (cycle 1 warms caches and pools up).
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, expect, it } from "vitest";
import { figures, mib } from "./lib/figures.js";
import { tunnelCycles } from "./lib/scenarios.js";

const root = mkdtempSync(join(tmpdir(), "socksmith-torture-cycles-"));
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const TUNNELS = Number(process.env.TORTURE_TUNNELS ?? 3000);

it(`10 cycles of ${TUNNELS} tunnels: every tunnel works, RSS after cycle 10 within 25 % of cycle 2`, async (ctx) => {
  const run = await tunnelCycles(
    { cwd: mkdtempSync(join(root, "run-")), children },
    { tunnels: TUNNELS, cycles: 10, concurrency: 500, payload: 4096, settleMs: 2000 },
  );
  const ratio = run.rss[9]! / run.rss[1]!;
  figures(ctx, {
    "tunnels per cycle": run.tunnels,
    "failed tunnels per cycle": run.failures.join(" "),
    "RSS per cycle, MiB": run.rss.map(mib).join(" "),
    "RSS cycle 10 / cycle 2": ratio,
    "MiB echoed": mib(run.bytesEchoed),
    seconds: run.seconds,
  });
  expect(run.alive).toBe(true);
  expect(run.failures.every((f) => f === 0)).toBe(true);
  expect(ratio).toBeLessThan(1.25);
  expect(ratio).toBeGreaterThan(0.75);
});
