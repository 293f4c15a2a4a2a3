/**
 * The capture worker's entry (bundled to dist/capture-worker.js): applies batches from the
 * recorder and acknowledges each, so the relay's event loop never waits on SQLite.
 *
 * After a write fails (disk full, file removed, I/O error) it reports once, closes the file and
 * from then on acknowledges batches without writing, so the recorder never waits forever.
 */
import { parentPort } from "node:worker_threads";
import type { WriterReply, WriterRequest } from "./batch.js";
import { CaptureWriter } from "./writer.js";

const port = parentPort;
if (port === null) throw new Error("capture-worker must run in a worker thread");

let writer: CaptureWriter | undefined;
let failed = false;
/** Checkpoints wait for this long without a batch (see CaptureWriter.checkpoint). */
const QUIET_MS = 250;
let quiet: NodeJS.Timeout | undefined;

function checkpointWhenQuiet(): void {
  clearTimeout(quiet);
  quiet = setTimeout(() => {
    if (failed) return;
    try {
      writer?.checkpoint();
    } catch (err) {
      fail(err);
    }
  }, QUIET_MS);
}

function reply(message: WriterReply, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(message, transfer);
}

function fail(err: unknown): void {
  failed = true;
  const e = err as { message?: string; code?: string };
  reply({ type: "failed", message: e.message ?? String(err), ...(e.code === undefined ? {} : { code: e.code }) });
  try {
    writer?.abandon();
  } catch {
    // Already failing; the first error is the one that matters.
  }
}

port.on("message", (request: WriterRequest) => {
  switch (request.type) {
    case "start":
      try {
        writer = new CaptureWriter(request.file, request.runId, request.maxPageCount === undefined ? {} : { maxPageCount: request.maxPageCount });
      } catch (err) {
        fail(err);
      }
      return;
    case "batch": {
      if (!failed) {
        try {
          writer!.write(request.batch);
        } catch (err) {
          fail(err);
        }
      }
      // SQLite has copied the bytes by now: the arena and the record buffer go back for reuse (no fresh pages to fault in).
      const { arena, records, ops } = request.batch;
      const transfer: ArrayBuffer[] = [];
      if (arena !== undefined) transfer.push(arena);
      if (records !== undefined) transfer.push(records.buffer);
      reply(
        {
          type: "ack",
          seq: request.batch.seq,
          bytes: request.batch.bytes,
          ops: ops.length + (records?.count ?? 0),
          ...(arena === undefined ? {} : { arena }),
          ...(records === undefined ? {} : { records: records.buffer }),
        },
        transfer,
      );
      if (!failed) checkpointWhenQuiet();
      return;
    }
    case "stop":
      clearTimeout(quiet);
      if (!failed) {
        try {
          writer?.stop(request.at);
        } catch (err) {
          fail(err);
        }
      }
      reply({ type: "stopped" });
      port!.close();
      return;
  }
});
