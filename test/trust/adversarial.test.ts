/**
 * A small, fast slice of `npm run torture` against the built CLI (shared code in torture/lib):
 * 500 fuzzed and mutated SOCKS4/4a/5 handshakes with capture on (the proxy then serves curl and
 * stops cleanly), and 3 open/close cycles of 200 tunnels (all work; no memory assertion at this
 * size, the torture run checks RSS over 10 cycles).
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, expect, it } from "vitest";
import { fuzzRun, tunnelCycles } from "../../torture/lib/scenarios.js";

const root = mkdtempSync(join(tmpdir(), "socksmith-trust-"));
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

it("500 fuzzed handshakes: the proxy survives, serves curl after, and stops cleanly", async () => {
  const run = await fuzzRun({ cwd: mkdtempSync(join(root, "fuzz-")), children }, { count: 500, warmup: 50, concurrency: 100 });
  expect(run.alive, run.stderrTail.join("\n")).toBe(true);
  expect(run.connections).toBe(500);
  expect(run.refused).toBe(0);
  expect(run.answered).toBeGreaterThan(0);
  expect([run.curlCode, run.curlBody]).toEqual([0, "ok"]);
  expect(run.exitCode).toBe(0);
}, 60_000);

it("3 cycles of 200 tunnels open, echo and close", async () => {
  const run = await tunnelCycles(
    { cwd: mkdtempSync(join(root, "cycles-")), children },
    { tunnels: 200, cycles: 3, concurrency: 100, payload: 1024, settleMs: 300 },
  );
  expect(run.alive).toBe(true);
  expect(run.failures).toEqual([0, 0, 0]);
  expect(run.bytesEchoed).toBe(3 * 200 * 1024);
}, 60_000);
