/**
 * Every malformed answer for every hook, generated: hundreds of answers per hook (any value,
 * near misses, hostile objects, valid answers; sync and async) in process through the loader,
 * Dispatcher, engine and capture (onTlsClientHello, asked only with --tls: loader and Dispatcher), and a JSON slice through the real CLI (`socksmith run -s`,
 * the addon reading its answers from a file, capture on). Invariants (docs/architecture.md, "Trust rules"): a valid
 * decision happens; an invalid answer is a hook error at the addon's file:line and the session
 * goes on as if the hook had answered undefined; every session ends; the process never dies.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { ANSWER_HOOKS } from "./lib/answers.js";
import { figures } from "./lib/figures.js";
import { cliProxy, inProcessProxy, learn, startTargets } from "./lib/hook-harness.js";
import { checkHook } from "./lib/hook-properties.js";
import { checkTlsHelloHook } from "./lib/tls-hello-property.js";
import { runSeed } from "./lib/random.js";

const root = mkdtempSync(join(tmpdir(), "socksmith-torture-hooks-"));
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const IN_PROCESS_RUNS = Number(process.env.TORTURE_HOOK_RUNS ?? 300);
const CLI_RUNS = Number(process.env.TORTURE_CLI_HOOK_RUNS ?? 40);

describe("in process: loader, Dispatcher, engine, capture", () => {
  for (const hook of ANSWER_HOOKS) {
    it(`${hook}: ${IN_PROCESS_RUNS} generated answers`, async (ctx) => {
      const targets = await startTargets();
      const proxy = await inProcessProxy(mkdtempSync(join(root, "in-")));
      try {
        await learn(proxy, targets);
        const f = await checkHook(proxy, targets, hook, { runs: IN_PROCESS_RUNS, seed: runSeed(), json: false });
        figures(ctx, { "answers (valid / invalid / either)": `${f.runs} (${f.valid} / ${f.invalid} / ${f.either})`, "answered through a promise": f.async });
        expect(f.runs).toBe(IN_PROCESS_RUNS);
      } finally {
        await proxy.close();
        await targets.close();
      }
    });
  }
});

describe("onTlsClientHello (asked only with --tls): loader and Dispatcher, through the hook port", () => {
  it(`onTlsClientHello: ${IN_PROCESS_RUNS} generated answers`, async (ctx) => {
    const f = await checkTlsHelloHook({ runs: IN_PROCESS_RUNS, seed: runSeed() });
    figures(ctx, { "answers (valid / invalid / either)": `${f.runs} (${f.valid} / ${f.invalid} / ${f.either})`, "answered through a promise": f.async });
    expect(f.runs).toBe(IN_PROCESS_RUNS);
  });
});

describe("the real CLI: JSON answers from a file", () => {
  for (const hook of ANSWER_HOOKS) {
    it(`${hook}: ${CLI_RUNS} generated JSON answers`, async (ctx) => {
      const targets = await startTargets();
      const proxy = await cliProxy(mkdtempSync(join(root, "cli-")), children);
      try {
        await learn(proxy, targets);
        const f = await checkHook(proxy, targets, hook, { runs: CLI_RUNS, seed: runSeed(), json: true });
        figures(ctx, { "answers (valid / invalid / either)": `${f.runs} (${f.valid} / ${f.invalid} / ${f.either})` });
        expect(f.runs).toBe(CLI_RUNS);
        expect(proxy.alive()).toBe(true);
        expect(await proxy.process.stop()).toBe(0);
      } finally {
        await proxy.close();
        await targets.close();
      }
    });
  }
});
