/**
 * The TUI's `r`: client replay of the focused session, then focus on the new session.
 * - Attached to a running proxy: the replay goes through that proxy (so addons apply to it, as
 *   they would to the app) and the proxy's recorder marks the new session as a replay.
 * - Browsing a file: the replay goes straight to the recorded target and is recorded in the file.
 * An intercepted TLS session is replayed inside new TLS: through a proxy running with --tls, which
 * intercepts it again, trusting that proxy's socksmith CA too; straight, Node's roots only.
 */
import { readFileSync } from "node:fs";
import { formatEndpoint } from "../engine/index.js";
import type { ClientReplayResult } from "../replay/client-replay.js";
import { notReplayable, replaySession } from "../replay/replay-session.js";
import { recordReplay } from "../replay/record.js";
import type { CaptureReader } from "../store/reader.js";
import type { RunningProxy } from "./proxy.js";
import { overTls } from "./commands/replay.js";
import { VERSION } from "./version.js";

export interface ReplayOutcome {
  readonly message: string;
  /** The new session, to focus. */
  readonly focus?: number;
}

export function liveReplay(reader: CaptureReader, proxy: RunningProxy): (id: number) => Promise<ReplayOutcome> {
  return async (id) => {
    const session = reader.session(id);
    if (session === undefined) return { message: `no session ${id}` };
    const why = notReplayable(session);
    if (why !== undefined) return { message: why };
    const via = proxy.bound[0]!;
    let ca: string[] = [];
    if (proxy.tlsCaPath !== undefined) {
      try {
        ca = [readFileSync(proxy.tlsCaPath, "utf8")];
      } catch (err) {
        return { message: `cannot read the socksmith CA ${proxy.tlsCaPath}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
      }
    }
    let marked: Promise<number> | undefined;
    const result = await replaySession(reader, session, {
      via: { host: via.host === "0.0.0.0" ? "127.0.0.1" : via.host === "::" ? "::1" : via.host, port: via.port },
      trust: { ca },
      connected: (local) => {
        marked = proxy.markReplay(local.port, id);
      },
    });
    const focus = marked === undefined ? undefined : await Promise.race([marked, new Promise<undefined>((r) => setTimeout(() => r(undefined), 2000))]);
    await untilStored(reader, focus);
    return { message: summary(id, focus, result), ...(focus === undefined ? {} : { focus }) };
  };
}

export function fileReplay(reader: CaptureReader): (id: number) => Promise<ReplayOutcome> {
  return async (id) => {
    const session = reader.session(id);
    if (session === undefined) return { message: `no session ${id}` };
    const why = notReplayable(session);
    if (why !== undefined) return { message: why };
    const result = await replaySession(reader, session);
    try {
      const focus = recordReplay(reader.file, session, result, VERSION);
      await untilStored(reader, focus);
      return { message: summary(id, focus, result), focus };
    } catch (err) {
      return { message: `${summary(id, undefined, result)} (not recorded: ${(err as Error).message})` };
    }
  };
}

function summary(id: number, focus: number | undefined, r: ClientReplayResult): string {
  const as = focus === undefined ? "" : ` as #${focus}`;
  const notice = r.notice === undefined ? "" : ` (${r.notice})`;
  if (!r.completed) return `replay of #${id} failed: ${r.error ?? "?"}${notice}`;
  const differs =
    r.udp === undefined
      ? `answer differs at byte ${r.difference?.offset}`
      : `answer ${(r.udp.differingAnswer ?? 0) + 1} differs at byte ${r.difference?.offset}`;
  const tls = r.tls === undefined ? "" : ` ${overTls(r.tls)}`;
  return `replayed #${id}${as} to ${formatEndpoint(r.target)}${tls}: ${r.match ? "same answer as recorded" : differs}${notice}`;
}

/** Waits (briefly) until the new session is readable, so the TUI can focus it. */
async function untilStored(reader: CaptureReader, id: number | undefined): Promise<void> {
  if (id === undefined) return;
  const deadline = Date.now() + 2000;
  while (reader.session(id) === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}
