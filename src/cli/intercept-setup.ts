/**
 * `run --intercept EXPR`: the intercept queue and runner around the proxy's hook runner (so a
 * person sees what the addons produced), the filter compiled for it, and what the TUI is handed.
 * The filter sees the session as its request says (host, port, command, version, user, client),
 * the stage (`stage:request|up|down|datagram`) and, at a chunk or datagram, its bytes (`~`).
 */
import type { HookRunner, SessionId } from "../engine/index.js";
import { FilterError, compileInterceptFilter, parseInterceptFilter, type Filter } from "../filter/index.js";
import { sessionRowOf } from "../filter/session-row-of.js";
import type { ReplayLookup } from "../hooks/replay-marks.js";
import { InterceptQueue } from "../intercept/intercept-queue.js";
import { InterceptRunner } from "../intercept/intercept-runner.js";
import type { InterceptEdit, InterceptPredicate, InterceptSubject } from "../intercept/types.js";
import type { InterceptBinding } from "../tui/intercept.js";
import { usageError } from "./errors.js";

/** `--intercept EXPR` parsed (a usage error with a caret when it does not parse). */
export function interceptOption(text: string): Filter {
  try {
    return parseInterceptFilter(text);
  } catch (err) {
    if (err instanceof FilterError) throw usageError(`--intercept: ${err.message}\n  ${text}\n  ${" ".repeat(err.column - 1)}^`);
    throw err;
  }
}

/** The runner's predicate from a filter: the subject as the filter language's candidate. */
export function interceptPredicate(filter: Filter): InterceptPredicate {
  const matches = compileInterceptFilter(filter);
  return (subject: InterceptSubject) => {
    const { request } = subject;
    const { host, port } = request.destination;
    const row = sessionRowOf({
      engine_id: request.id,
      version: request.version === "4a" ? "4a" : request.version === 4 ? "4" : "5",
      command: request.command,
      user: request.user ?? null,
      requested_type: request.destination.type,
      requested_host: host,
      requested_port: port,
      target_host: host,
      target_port: port,
      client_host: request.client.host,
      client_port: request.client.port,
    });
    return matches({ stage: subject.stage, row, ...(subject.stage === "request" ? {} : { payload: subject.data }) });
  };
}

export interface RunningIntercept {
  readonly runner: InterceptRunner;
  /** What the TUI gets. */
  readonly binding: InterceptBinding;
}

/** The runner around `inner`, its queue holding what `filter` matches. */
export function startIntercept(
  filter: { readonly text: string; readonly filter: Filter },
  inner: HookRunner,
  replays: ReplayLookup | undefined,
  edited: (session: SessionId, what: InterceptEdit) => void,
): RunningIntercept {
  const queue = new InterceptQueue();
  queue.setFilter(interceptPredicate(filter.filter));
  const runner = new InterceptRunner(inner, queue, { ...(replays === undefined ? {} : { replays }), events: { edited } });
  const binding: InterceptBinding = {
    queue,
    filterText: filter.text,
    setFilter(text: string) {
      if (text.trim() === "") return queue.setFilter(undefined);
      queue.setFilter(interceptPredicate(parseInterceptFilter(text)));
    },
  };
  return { runner, binding };
}
