/**
 * The TUI's `e`: one session as a JSON document (the shape of `show --json`: the session's facts
 * with its TLS facts, then its events, chunks and datagrams, payload base64), written the way the TUI must do
 * everything, since it shares the relay's thread: in pages, asynchronously. Each page reads a
 * bounded number of rows (payload for at most EXPORT_STEP_BYTES of stored bytes at a time), and the file is written through a file handle between pages, so neither the
 * document nor the session is ever in memory whole and the event loop keeps turning.
 *
 * The bytes are exactly `JSON.stringify(doc, null, 2) + "\n"` of the whole document. The file is
 * created 0600 (it holds captured payload); a failed export removes what it wrote.
 */
import { open, rm } from "node:fs/promises";
import { chunkJson, datagramJson, eventJson, sessionJson } from "../store/json.js";
import type { ChunkMeta, DatagramMeta, RowKey, SessionSource } from "./types.js";

const META_PAGE = 512;
/**
 * Stored bytes of the rows one page turns into JSON: base64 and stringify cost about 30 ms a MiB
 * on a loaded machine, so a page keeps the event loop for tens of milliseconds at most.
 */
const EXPORT_STEP_BYTES = 256 * 1024;
const EVENT_PAGE = 500;
/** Written out once this much text is pending. */
const FLUSH_CHARS = 256 * 1024;

export interface ExportResult {
  readonly chunks: number;
  readonly datagrams: number;
  readonly events: number;
}

/** Writes session `id` to `file`; rejects with the file system's error (the file is then removed). */
export async function exportSession(source: SessionSource, id: number, file: string): Promise<ExportResult> {
  const session = source.session(id);
  if (session === undefined) throw new Error(`no session ${id}`);
  const handle = await open(file, "w", 0o600);
  let pending: string[] = [];
  let pendingChars = 0;
  const write = (text: string) => {
    pending.push(text);
    pendingChars += text.length;
  };
  const flush = async (always = false) => {
    if (!always && pendingChars < FLUSH_CHARS) {
      // Still let the relay run between pages.
      await new Promise((r) => setImmediate(r));
      return;
    }
    const text = pending.join("");
    pending = [];
    pendingChars = 0;
    if (text !== "") await handle.write(text);
  };
  const counts = { chunks: 0, datagrams: 0, events: 0 };
  try {
    write("{");
    let firstField = true;
    // `tls` as in `show --json`: the session's tls row, or null when it has none.
    for (const [key, value] of Object.entries(sessionJson(session, source.tls?.(id) ?? null))) {
      if (value === undefined) continue;
      write(`${firstField ? "" : ","}\n  ${JSON.stringify(key)}: ${indented(value, 2)}`);
      firstField = false;
    }
    // One array field of the document, its elements written as they come.
    const array = async (key: string, fill: (element: (value: unknown) => void) => Promise<void>) => {
      let n = 0;
      write(`${firstField ? "" : ","}\n  ${JSON.stringify(key)}: [`);
      firstField = false;
      await fill((value) => {
        write(`${n === 0 ? "" : ","}\n    ${indented(value, 4)}`);
        n++;
      });
      write(n === 0 ? "]" : "\n  ]");
    };

    await array("events", async (element) => {
      let afterId = 0;
      for (;;) {
        const page = source.eventPage(id, { afterId, limit: EVENT_PAGE });
        for (const e of page) element(eventJson(e));
        counts.events += page.length;
        await flush();
        if (page.length < EVENT_PAGE) return;
        afterId = page[page.length - 1]!.id;
      }
    });
    await array("chunks", async (element) => {
      await pages(
        (after) => source.chunkMeta(id, { ...(after === undefined ? {} : { after }), limit: META_PAGE }),
        async (rows: ChunkMeta[]) => {
          const payload = source.chunkPayload(rows.map((r) => r.id));
          for (const m of rows) {
            const p = payload.get(m.id);
            if (p === undefined) continue;
            const { dataBytes: _d, sentBytes: _s, ...facts } = m;
            element(chunkJson({ ...facts, data: p.data, sent: p.sent }));
            counts.chunks++;
          }
          await flush();
        },
      );
    });
    await array("datagrams", async (element) => {
      await pages(
        (after) => source.datagramMeta(id, { ...(after === undefined ? {} : { after }), limit: META_PAGE }),
        async (rows: DatagramMeta[]) => {
          const payload = source.datagramPayload(rows.map((r) => r.id));
          for (const m of rows) {
            const p = payload.get(m.id);
            if (p === undefined) continue;
            const { dataBytes: _d, sentBytes: _s, ...facts } = m;
            element(datagramJson({ ...facts, data: p.data, sent: p.sent }));
            counts.datagrams++;
          }
          await flush();
        },
      );
    });
    write("\n}\n");
    await flush(true);
    await handle.close();
    return counts;
  } catch (err) {
    await handle.close().catch(() => {});
    await rm(file, { force: true }).catch(() => {});
    throw err;
  }
}

/**
 * Walks a session's rows page by page, handing `take` groups whose stored bytes add up to at most
 * EXPORT_STEP_BYTES (one row at least), so a page never reads more payload than that at once.
 */
async function pages<M extends RowKey & { readonly dataBytes: number; readonly sentBytes: number | null }>(
  page: (after: RowKey | undefined) => M[],
  take: (rows: M[]) => Promise<void>,
): Promise<void> {
  let after: RowKey | undefined;
  for (;;) {
    const meta = page(after);
    let group: M[] = [];
    let bytes = 0;
    for (const m of meta) {
      const size = m.dataBytes + (m.sentBytes ?? 0);
      if (group.length > 0 && bytes + size > EXPORT_STEP_BYTES) {
        await take(group);
        group = [];
        bytes = 0;
      }
      group.push(m);
      bytes += size;
    }
    if (group.length > 0) await take(group);
    if (meta.length < META_PAGE) return;
    const last = meta[meta.length - 1]!;
    after = { seq: last.seq, id: last.id };
  }
}

/** JSON.stringify(value, null, 2) as it reads at `depth` spaces of indentation. */
function indented(value: unknown, depth: number): string {
  return JSON.stringify(value, null, 2).replace(/\n/g, `\n${" ".repeat(depth)}`);
}
