// Benchmark addon: sees every chunk and passes it on unchanged (the cost of the onData path).
import type { Addon } from "socksmith/addon";

export default { name: "pass-data", onData: () => undefined } satisfies Addon;
