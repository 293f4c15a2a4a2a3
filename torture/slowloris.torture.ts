/**
 * Slowloris against the real CLI: many connections send a valid handshake one byte at a time,
 * slower than `--handshake-timeout` allows; a normal client is served meanwhile and the proxy
 * closes every slow connection once its handshake time is up.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, expect, it } from "vitest";
import { figures } from "./lib/figures.js";
import { slowlorisRun } from "./lib/scenarios.js";

const root = mkdtempSync(join(tmpdir(), "socksmith-torture-slow-"));
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

it("2,000 slowloris connections: a normal client is served meanwhile, all of them are closed at the handshake timeout", async (ctx) => {
  // 13 bytes at one per 400 ms = 5.2 s, against a 2 s handshake timeout.
  const run = await slowlorisRun(
    { cwd: mkdtempSync(join(root, "run-")), children },
    { connections: 2000, byteEveryMs: 400, handshakeTimeoutMs: 2000, graceMs: 2500, curls: 4 },
  );
  figures(ctx, {
    "slow connections": run.connections,
    "closed by the proxy": run.closedByProxy,
    "still open at timeout + 2.5 s": run.stillOpen,
    "bytes trickled": run.bytesTrickled,
    "curl exit codes meanwhile": run.curlCodes.join(" "),
    "last one closed after, ms": run.lastClosedMs,
  });
  expect(run.alive).toBe(true);
  expect(run.curlCodes.every((c) => c === 0)).toBe(true);
  expect(run.stillOpen).toBe(0);
  expect(run.closedByProxy).toBe(run.connections);
  // Nobody completed the 13-byte handshake: each was cut off before its last byte.
  expect(run.bytesTrickled).toBeLessThan(run.connections * 13);
});
