/**
 * Fuzzed and mutated handshakes over live sockets against the real CLI with capture on:
 * 20,000 connections (SOCKS4/4a/5 greetings, RFC 1929, requests; byte flips, truncation,
 * extension, random splits). Afterwards the proxy still answers a normal client and its RSS is
 * back within bounds.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, expect, it } from "vitest";
import { figures, mib } from "./lib/figures.js";
import { fuzzRun } from "./lib/scenarios.js";

const root = mkdtempSync(join(tmpdir(), "socksmith-torture-fuzz-"));
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const COUNT = Number(process.env.TORTURE_FUZZ_COUNT ?? 20_000);

it(`${COUNT} fuzzed handshakes: no crash, a normal client is served after, RSS back within bounds`, async (ctx) => {
  const run = await fuzzRun({ cwd: mkdtempSync(join(root, "run-")), children }, { count: COUNT, warmup: 1000, concurrency: 200 });
  figures(ctx, {
    seed: run.seed,
    connections: run.connections,
    "well-formed / mutated / random bytes": `${run.wellFormed} / ${run.mutated} / ${run.random}`,
    "answered (≥ 1 byte back)": run.answered,
    "closed by the proxy / reset / client let go / refused": `${run.closedByProxy} / ${run.reset} / ${run.clientLetGo} / ${run.refused}`,
    "MiB sent / received": `${mib(run.bytesSent)} / ${mib(run.bytesReceived)}`,
    "RSS after warm-up, MiB": mib(run.rssBaseline),
    "RSS after the fuzz (settled), MiB": mib(run.rssAfter),
    "RSS ratio after / warm-up": run.rssAfter / run.rssBaseline,
    "curl after the fuzz": run.curlCode,
    seconds: run.seconds,
  });
  expect(run.alive, `the proxy died: ${run.stderrTail.join("\n")}`).toBe(true);
  expect(run.connections).toBe(COUNT);
  expect(run.refused).toBe(0);
  expect(run.curlCode).toBe(0);
  expect(run.curlBody).toBe("ok");
  // Bounded: 20,000 sessions later the proxy holds less than 1.75× its warmed-up size (seen: 1.3–1.45×,
  // growing less than linearly from 3,000 to 20,000 connections: caches filling, not a leak per session).
  expect(run.rssAfter).toBeLessThan(run.rssBaseline * 1.75);
  expect(run.exitCode).toBe(0);
});
