/**
 * A recorded TCP session as turns of a conversation: a turn is what one side sent until the
 * other side spoke. Client replay re-sends the client's turns and waits for an answer between
 * them; server replay answers each client turn with the server's next turn.
 *
 * Which bytes a side "sent" in the recording:
 * - client ("up"): the bytes as the proxy received them from the client (`data`), before addons;
 * - server ("down"): the bytes as the proxy received them from the target (`data`), or, for a
 *   session an addon served itself, the bytes it injected (`sent` of `inject` chunks).
 * Chunks an addon dropped or replaced are still the sender's bytes; injected "up" bytes are not
 * the client's and are left out.
 */
import type { ChunkRow } from "../store/schema.js";

export interface Turn {
  readonly direction: "up" | "down";
  readonly data: Buffer;
  /** When its first byte was recorded (ms since the epoch). */
  readonly at: number;
  /** When its last byte was recorded. */
  readonly lastAt: number;
}

export function turnsOf(chunks: Iterable<ChunkRow>): Turn[] {
  const turns: { direction: "up" | "down"; parts: Buffer[]; at: number; lastAt: number }[] = [];
  for (const c of chunks) {
    const bytes = c.verdict === "inject" ? (c.direction === "down" ? c.sent : null) : c.data;
    if (bytes === null || bytes.length === 0) continue;
    const last = turns[turns.length - 1];
    if (last !== undefined && last.direction === c.direction) {
      last.parts.push(bytes);
      last.lastAt = c.at;
    } else {
      turns.push({ direction: c.direction, parts: [bytes], at: c.at, lastAt: c.at });
    }
  }
  return turns.map((t) => ({ direction: t.direction, data: Buffer.concat(t.parts), at: t.at, lastAt: t.lastAt }));
}

/** The bytes one side sent over the whole session. */
export function sideOf(turns: readonly Turn[], direction: "up" | "down"): Buffer {
  return Buffer.concat(turns.filter((t) => t.direction === direction).map((t) => t.data));
}

/** Where two byte strings first differ (undefined when equal), with a few bytes around it as hex. */
export function firstDifference(expected: Uint8Array, actual: Uint8Array, context = 8): { offset: number; expected: string; actual: string } | undefined {
  const n = Math.min(expected.length, actual.length);
  let i = 0;
  while (i < n && expected[i] === actual[i]) i++;
  if (i === n && expected.length === actual.length) return undefined;
  const from = Math.max(0, i - context);
  const hex = (b: Uint8Array) =>
    Buffer.from(b.subarray(from, Math.min(b.length, i + context)))
      .toString("hex")
      .replace(/(..)(?!$)/g, "$1 ");
  return { offset: i, expected: hex(expected), actual: hex(actual) };
}

/** The first answer that differs from the recorded one, counting a missing or an extra one. */
export function firstDifferingAnswer(expected: readonly Uint8Array[], actual: readonly Uint8Array[]): number | undefined {
  const n = Math.max(expected.length, actual.length);
  for (let i = 0; i < n; i++) {
    const e = expected[i];
    const a = actual[i];
    if (e === undefined || a === undefined || Buffer.compare(e, a) !== 0) return i;
  }
  return undefined;
}
