/**
 * The property "every malformed answer" for onTlsClientHello, through the loader and the
 * Dispatcher: the engine asks that hook only with `--tls`, so the cases call the Dispatcher's
 * `tlsClientHello` port as the engine does (open, request, hello, close) instead of driving a
 * session over sockets. The addon is torture/addons/fuzzed-answers.ts, answering from the
 * `globalThis` channel. Per case: a valid answer comes out as its decision with no report; an
 * invalid one is an "invalid" hook error at the hook's line of that file and counts as no
 * opinion (undefined); "either" may be both; nothing throws, nothing is left pending.
 */
import fc from "fast-check";
import type { SessionHandle, TlsHelloDecision } from "../../src/engine/index.js";
import { Dispatcher, type HookFailure } from "../../src/hooks/dispatcher.js";
import { addonLocation, loadAddon } from "../../src/hooks/loader.js";
import { answers, classify, realize, show } from "./answers.js";
import { FUZZED_ADDON, HOOK_LINES } from "./hook-harness.js";
import type { PropertyFigures } from "./hook-properties.js";

const HOOK = "onTlsClientHello";

interface Channel {
  take(hook: string): { readonly answer: unknown } | undefined;
}

/** Runs `runs` generated answers; throws fast-check's report when a case breaks the contract. */
export async function checkTlsHelloHook(options: { runs: number; seed: number }): Promise<PropertyFigures> {
  const loaded = await loadAddon(FUZZED_ADDON);
  let failures: HookFailure[] = [];
  const dispatcher = new Dispatcher([loaded], {
    hookTimeoutMs: 2000,
    locate: addonLocation,
    events: { hookFailed: (f) => failures.push(f), tagged: () => {}, logged: () => {} },
  });
  await dispatcher.start();
  const global = globalThis as { __socksmithTorture?: Channel };
  const previous = global.__socksmithTorture;
  let armed: { answer: unknown } | undefined;
  global.__socksmithTorture = {
    take(hook) {
      if (armed === undefined || hook !== HOOK) return undefined;
      const given = armed;
      armed = undefined;
      return given;
    },
  };
  const figures: PropertyFigures = { runs: 0, valid: 0, invalid: 0, either: 0, async: 0 };
  let id = 0;
  try {
    await fc.assert(
      fc.asyncProperty(fc.record({ answer: answers(HOOK), async: fc.boolean() }), async ({ answer, async }) => {
        figures.runs++;
        if (async) figures.async++;
        const given = realize(answer);
        const verdict = classify(HOOK, given);
        figures[verdict.validity]++;
        failures = [];
        armed = { answer: async ? Promise.resolve().then(() => given) : given };
        const { decision, problems } = await oneSession(dispatcher, ++id);
        if (armed !== undefined) problems.push("the hook was not called");
        const decided = outcomeOf(decision);
        const kind = verdict.decision.kind;
        const allowed = verdict.validity === "invalid" ? ["none"] : verdict.validity === "valid" ? [kind] : [kind, "none"];
        if (!allowed.includes(decided)) problems.push(`decided ${decided}, expected ${allowed.join(" or ")} (${verdict.validity}: ${verdict.why})`);
        const line = HOOK_LINES[HOOK];
        const own = failures.filter((f) => f.hook === HOOK);
        if (verdict.validity === "invalid") {
          const kinds = async ? ["invalid", "rejected"] : ["invalid"];
          const at = new RegExp(`fuzzed-answers\\.ts:${line}:\\d+$`);
          if (!own.some((f) => kinds.includes(f.kind) && f.location !== undefined && at.test(f.location)))
            problems.push(
              `no "invalid" hook error at fuzzed-answers.ts:${line} (got ${own.map((f) => `${f.kind} at ${f.location}: ${f.message}`).join("; ") || "none"})`,
            );
        } else if (verdict.validity === "valid" && own.length > 0) {
          problems.push(`a valid answer was reported: ${own.map((f) => `${f.kind}: ${f.message}`).join("; ")}`);
        }
        if (failures.length > own.length) problems.push(`other hooks were reported: ${failures.filter((f) => f.hook !== HOOK).map((f) => f.hook)}`);
        if (problems.length > 0) throw new Error(`${HOOK}${async ? " (async)" : ""} answered ${show(given)}: ${problems.join("; ")}`);
      }),
      { numRuns: options.runs, seed: options.seed, endOnFailure: true },
    );
  } finally {
    global.__socksmithTorture = previous;
    await dispatcher.stop();
  }
  return figures;
}

/** One session through the ports the engine calls: open, CONNECT, the hello, close. */
async function oneSession(dispatcher: Dispatcher, id: number): Promise<{ decision: TlsHelloDecision | "threw"; problems: string[] }> {
  const handle: SessionHandle = { id, inject() {}, injectDatagram() {}, close() {} };
  const client = { host: "127.0.0.1", port: 40000 + (id % 20000) };
  const problems: string[] = [];
  let decision: TlsHelloDecision | "threw";
  try {
    await dispatcher.open({ id, client, local: { host: "127.0.0.1", port: 1080 } }, handle);
    await dispatcher.request({ id, version: 5, command: "connect", destination: { type: "domain", host: "example.test", port: 443 }, client }, handle);
    decision = await dispatcher.tlsClientHello(
      { id, sni: "example.test", alpn: ["h2"], versions: ["TLSv1.3"], target: { host: "example.test", port: 443 } },
      handle,
    );
  } catch (err) {
    decision = "threw";
    problems.push(`the dispatcher threw: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    dispatcher.observer.sessionClosed({ id, at: Date.now(), reason: "completed", bytesUpReceived: 0, bytesUpSent: 0, bytesDownReceived: 0, bytesDownSent: 0 });
  }
  return { decision, problems };
}

function outcomeOf(decision: TlsHelloDecision | "threw"): string {
  if (decision === "threw") return "threw";
  if (decision === undefined) return "none";
  const keys = Object.keys(decision);
  if (keys.length !== 1) return `not one decision: ${show(decision)}`;
  if ("intercept" in decision && decision.intercept === true) return "intercept";
  if ("passthrough" in decision && decision.passthrough === true) return "passthrough";
  return `not a decision: ${show(decision)}`;
}
