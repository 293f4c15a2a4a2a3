/**
 * Files and disk against the real CLI: a reload storm during traffic (downloads byte-exact, a
 * deny rule never fails open), kill -9 mid-capture (the file opens cleanly, bytes up to shortly
 * before the kill are there, the open sessions are interrupted), and a full disk (the proxy
 * keeps relaying and says the capture failed).
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, expect, it } from "vitest";
import { figures } from "./lib/figures.js";
import { MiB } from "./lib/proxy-process.js";
import { diskFull, killMidCapture, reloadStorm } from "./lib/resilience.js";

const root = mkdtempSync(join(tmpdir(), "socksmith-torture-files-"));
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});
afterAll(() => rmSync(root, { recursive: true, force: true }));
const place = () => ({ cwd: mkdtempSync(join(root, "run-")), children });

it("reload storm: 200 in-place saves during downloads; every download byte-exact, the deny rule never fails open", async (ctx) => {
  const run = await reloadStorm(place(), { saves: 200, everyMs: 25, downloads: 12, size: 8 * MiB, parallel: 3 });
  figures(ctx, {
    "in-place saves / reloads logged": `${run.saves} / ${run.reloads}`,
    "requests to the denied port / let through": `${run.forbiddenTried} / ${run.forbiddenAllowed}`,
    "downloads byte-exact": `${run.downloadsExact} of ${run.downloads} (${run.downloadMiB} MiB)`,
    seconds: run.seconds,
  });
  expect(run.alive).toBe(true);
  expect(run.forbiddenAllowed).toBe(0);
  expect(run.downloadsExact).toBe(run.downloads);
  expect(run.reloads).toBeGreaterThan(0);
});

it("kill -9 mid-capture: the file opens cleanly, the bytes sent before are there, the open sessions are interrupted", async (ctx) => {
  const run = await killMidCapture(place(), { tunnels: 3, bytes: 256 * 1024, settleMs: 1000 });
  figures(ctx, {
    "sessions listed after the kill": run.sessions.length,
    "bytes sent per tunnel / captured up": `${run.sentPerTunnel} / ${run.capturedUp.join(", ")}`,
    "next run says": run.reopenNotice ?? "(nothing)",
    "states after": run.statesAfter.join(", "),
  });
  expect(run.sessionsCode).toBe(0);
  expect(run.sessions.length).toBe(3);
  expect(run.capturedUp).toEqual([run.sentPerTunnel, run.sentPerTunnel, run.sentPerTunnel]);
  expect(run.reopenNotice).toMatch(/marked 3 sessions of an earlier run as interrupted/);
  expect(run.statesAfter.every((s) => /interrupted/.test(s))).toBe(true);
});

it("disk full (RLIMIT_FSIZE → EFBIG): the proxy keeps relaying byte-exact and reports the capture error", async (ctx) => {
  const run = await diskFull(place(), { limitBytes: 4 * MiB, downloads: 8, size: 4 * MiB });
  figures(ctx, {
    "file size limit, MiB": run.limitBytes / MiB,
    "downloads byte-exact": `${run.downloadsExact} of ${run.downloads} (${run.downloadMiB} MiB)`,
    "the proxy said": run.captureError ?? "(nothing)",
    "exit code on Ctrl-C": run.exitCode,
  });
  expect(run.alive).toBe(true);
  expect(run.downloadsExact).toBe(run.downloads);
  expect(run.captureError).toMatch(/capture stopped: .*(EFBIG|too large|full|disk)/i);
});
