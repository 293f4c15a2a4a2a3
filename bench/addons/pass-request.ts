// Benchmark addon: sees every request and has no opinion (the cost of one decision hook).
import type { Addon } from "socksmith/addon";

export default { name: "pass-request", onRequest: () => undefined } satisfies Addon;
