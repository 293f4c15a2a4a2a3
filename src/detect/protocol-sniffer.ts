/**
 * Incremental front end to detectProtocol for a recorder that sees a session's up-chunks one
 * at a time.
 */
import { scanLimited, scannerFor } from "./detect-protocol.js";
import { DETECT_LIMIT, NEED_MORE, UNKNOWN, type Detection, type Scanner } from "./detection.js";

/**
 * Feed it each chunk the client sends, in order, until `decided`; each push answers what
 * detectProtocol would for all the bytes so far. It copies at most DETECT_LIMIT bytes (chunks
 * may be reused buffers, so it never keeps a reference to one) and nothing once decided; a first
 * chunk that decides on its own is not copied at all. The detector resumes where the last push
 * stopped, so the total work is linear in the bytes kept, however they are chunked.
 */
export class ProtocolSniffer {
  private buffer = new Uint8Array(0);
  private length = 0;
  private scanner: Scanner | undefined;
  private answer: Detection = NEED_MORE;

  /** The answer so far: "need-more" until decided, then fixed. */
  get result(): Detection {
    return this.answer;
  }

  get decided(): boolean {
    return this.answer.kind !== "need-more";
  }

  /** How many bytes are kept (at most DETECT_LIMIT; none once a first chunk decided alone). */
  get buffered(): number {
    return this.length;
  }

  push(chunk: Uint8Array): Detection {
    if (this.decided || chunk.length === 0) return this.answer;
    if (this.scanner === undefined) {
      this.scanner = scannerFor(chunk[0]!);
      if (this.scanner === undefined) return (this.answer = UNKNOWN);
      this.answer = scanLimited(this.scanner, chunk);
      if (!this.decided) this.append(chunk);
      return this.answer;
    }
    this.append(chunk);
    this.answer = scanLimited(this.scanner, this.buffer.subarray(0, this.length));
    if (this.decided) this.buffer = new Uint8Array(0);
    return this.answer;
  }

  private append(chunk: Uint8Array): void {
    const take = Math.min(chunk.length, DETECT_LIMIT - this.length);
    const needed = this.length + take;
    if (needed > this.buffer.length) {
      const grown = new Uint8Array(Math.min(DETECT_LIMIT, Math.max(needed, this.buffer.length * 2, 1024)));
      grown.set(this.buffer.subarray(0, this.length));
      this.buffer = grown;
    }
    this.buffer.set(chunk.subarray(0, take), this.length);
    this.length = needed;
  }
}
