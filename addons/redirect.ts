/**
 * Sends connections for one destination somewhere else, e.g. production API → local mock.
 * The client still sees its own request succeed.
 *
 *   npx socksmith -s addons/redirect.ts --set redirect.from=api.example.com:443 --set redirect.to=127.0.0.1:8443
 */
import type { Addon } from "socksmith/addon";

function endpoint(text: string): { host: string; port: number } | undefined {
  const m = /^(.*):(\d+)$/.exec(text.trim());
  return m ? { host: m[1]!.replace(/^\[|\]$/g, ""), port: Number(m[2]) } : undefined;
}

export default {
  name: "redirect",
  options: {
    from: { type: "string", default: "", description: "HOST:PORT as the client requests it" },
    to: { type: "string", default: "", description: "HOST:PORT to dial instead" },
  },
  onRequest(request, ctx) {
    const from = endpoint(String(ctx.options.from));
    const to = endpoint(String(ctx.options.to));
    if (!from || !to || request.command !== "connect") return undefined;
    if (request.host.toLowerCase() !== from.host.toLowerCase() || request.port !== from.port) return undefined;
    ctx.tag("redirected", `${to.host}:${to.port}`);
    return { redirect: to };
  },
} satisfies Addon<{ from: string; to: string }>;
