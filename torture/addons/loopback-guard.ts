/**
 * Keeps a fuzzed or tortured proxy on loopback: a CONNECT is allowed only to 127.0.0.1, ::1 or
 * localhost on one of the listed ports, anything else is denied (0x02) before any name is
 * resolved or anything dialled. Mutated handshakes name arbitrary hosts; this addon is what
 * makes it safe to fuzz the real CLI. BIND and UDP ASSOCIATE dial nothing and pass.
 *
 *   socksmith run -s torture/addons/loopback-guard.ts --set loopback-guard.ports=8080,8081
 */
import type { Addon } from "socksmith/addon";

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"]);

export default {
  name: "loopback-guard",
  options: {
    ports: { type: "string", default: "", description: "comma-separated loopback ports a CONNECT may reach" },
  },
  onRequest(request, ctx) {
    if (request.command !== "connect") return undefined;
    const ports = String(ctx.options.ports).split(",").map(Number);
    return LOOPBACK.has(request.host) && ports.includes(request.port) ? undefined : { deny: 2 };
  },
} satisfies Addon<{ ports: string }>;
