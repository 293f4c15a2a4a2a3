/**
 * Adds latency to every chunk and caps bandwidth per session and direction, like a slow
 * network. While a chunk waits, its direction stops being read, so the sender is slowed too.
 *
 *   npx socksmith -s addons/latency.ts --set latency.ms=200 --set latency.kbps=512
 */
import type { Addon } from "socksmith/addon";

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export default {
  name: "latency",
  options: {
    ms: { type: "number", default: 100, description: "delay per chunk, milliseconds" },
    kbps: { type: "number", default: 0, description: "bandwidth cap per direction, kilobytes/s (0 = none)" },
  },
  async onData(chunk, ctx) {
    const ms = Number(ctx.options.ms);
    const kbps = Number(ctx.options.kbps);
    const transfer = kbps > 0 ? (chunk.data.length / (kbps * 1024)) * 1000 : 0;
    await sleep(ms + transfer);
    return undefined;
  },
} satisfies Addon<{ ms: number; kbps: number }>;
