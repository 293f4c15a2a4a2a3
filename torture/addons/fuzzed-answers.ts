/**
 * An addon whose hooks answer whatever the torture suite armed: `{ id, hook, answer }` read
 * from the JSON file named by its `answers` option (the real CLI), or from a channel on
 * `globalThis` when the suite loads it in its own process (any value then, not only JSON).
 * An armed answer is given once, to the first call of its hook; every other call answers
 * undefined. When it gives one it logs `answered ID`, so the suite knows the hook ran.
 * Each hook is on its own line: a wrong answer must be reported at that line.
 */
import { readFileSync } from "node:fs";

interface Armed {
  readonly id: number;
  readonly hook: string;
  readonly answer: unknown;
}

interface Channel {
  /** The armed answer for `hook`, once (undefined when none is armed for it). */
  take(hook: string): { readonly answer: unknown } | undefined;
}

interface Ctx {
  readonly options: Readonly<Record<string, unknown>>;
  log(message: string): void;
}

let lastGiven = -1;

function answer(hook: string, ctx: Ctx): unknown {
  const channel = (globalThis as { __socksmithTorture?: Channel }).__socksmithTorture;
  if (channel !== undefined) return channel.take(hook)?.answer;
  let armed: Armed;
  try {
    armed = JSON.parse(readFileSync(String(ctx.options.answers), "utf8")) as Armed;
  } catch {
    return undefined;
  }
  if (armed.hook !== hook || armed.id <= lastGiven) return undefined;
  lastGiven = armed.id;
  ctx.log(`answered ${armed.id}`);
  return armed.answer;
}

export default {
  name: "fuzzed",
  options: { answers: { type: "string", default: "" } },
  onOpen: (_open: unknown, ctx: Ctx) => answer("onOpen", ctx),
  onAuth: (_auth: unknown, ctx: Ctx) => answer("onAuth", ctx),
  onRequest: (_request: unknown, ctx: Ctx) => answer("onRequest", ctx),
  onReply: (_reply: unknown, ctx: Ctx) => answer("onReply", ctx),
  onTlsClientHello: (_hello: unknown, ctx: Ctx) => answer("onTlsClientHello", ctx),
  onData: (_chunk: unknown, ctx: Ctx) => answer("onData", ctx),
  onDatagram: (_datagram: unknown, ctx: Ctx) => answer("onDatagram", ctx),
};
