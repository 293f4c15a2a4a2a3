/**
 * The property behind "every malformed answer for every hook": for `runs` generated answers
 * of one hook (answers.ts), checkCase finds nothing wrong. Counts what was tried.
 */
import fc from "fast-check";
import { answers, classify, confine, type AnswerHook } from "./answers.js";
import { checkCase, type HookProxy, type Targets } from "./hook-harness.js";

export interface PropertyFigures {
  runs: number;
  valid: number;
  invalid: number;
  either: number;
  async: number;
}

/**
 * Runs the property for `hook`; throws fast-check's report (seed, path and the shrunk answer)
 * when a case breaks the contract. `json`: answers a JSON file can carry (the real CLI).
 */
export async function checkHook(
  proxy: HookProxy,
  targets: Targets,
  hook: AnswerHook,
  options: { runs: number; seed: number; json: boolean },
): Promise<PropertyFigures> {
  const figures: PropertyFigures = { runs: 0, valid: 0, invalid: 0, either: 0, async: 0 };
  const cases = fc.record({
    answer: answers(hook, options.json),
    async: options.json ? fc.constant(false) : fc.boolean(),
    failing: hook === "onReply" ? fc.boolean() : fc.constant(false),
  });
  await fc.assert(
    fc.asyncProperty(cases, async ({ answer, async, failing }) => {
      figures.runs++;
      if (async) figures.async++;
      const given = hook === "onRequest" || hook === "onDatagram" ? confine(answer, 1) : answer;
      figures[classify(hook, given, { failed: failing, direction: "up" }).validity]++;
      const problems = await checkCase(proxy, targets, { hook, answer, async, failing });
      if (problems.length > 0) throw new Error(problems.join("\n"));
    }),
    // Shrinking replays cases over sockets: bound it, the first counterexample is reported anyway.
    { numRuns: options.runs, seed: options.seed, endOnFailure: false, interruptAfterTimeLimit: 120_000, markInterruptAsFailure: false },
  );
  return figures;
}
