/**
 * Sends chosen hosts through an upstream proxy (or a chain of them) and everything else direct,
 * e.g. only the internal names through the corporate proxy, or only one site through Tor.
 * Hosts are globs matched against the name the client sent (case-insensitive); `upstream` is a
 * proxy URL as `run --upstream` takes it, or several separated by spaces for a chain in order.
 * Its answer overrules `--upstream` / `--route`, so the other hosts go direct even with them; each
 * session's route (without credentials) is recorded and the session tagged `route=…`.
 *
 *   npx socksmith -s addons/route-by-host.ts --set route-by-host.hosts='*.corp.example,git.internal' \
 *                 --set route-by-host.upstream='socks5h://proxy.corp.example:1080'
 */
import type { Addon } from "socksmith/addon";

function globToRegExp(glob: string): RegExp {
  const escaped = glob
    .trim()
    .toLowerCase()
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${escaped}$`);
}

let patterns: RegExp[] = [];
let chain: string[] = [];

export default {
  name: "route-by-host",
  options: {
    hosts: { type: "string", default: "", description: "comma-separated host globs that go through the upstream, e.g. *.corp.example" },
    upstream: { type: "string", default: "", description: "proxy URL (several separated by spaces: a chain), e.g. socks5h://127.0.0.1:9050" },
  },
  onLoad({ options, log }) {
    patterns = String(options.hosts)
      .split(",")
      .filter((h) => h.trim() !== "")
      .map(globToRegExp);
    chain = String(options.upstream).split(/\s+/).filter(Boolean);
    // Without an upstream there is nothing to route through: answer nothing rather than send the chosen hosts direct.
    if (chain.length === 0 && patterns.length > 0) log("no upstream set (--set route-by-host.upstream=URL): every request keeps its default route");
  },
  onRequest(request, ctx) {
    if (chain.length === 0) return undefined;
    const through = patterns.some((p) => p.test(request.host.toLowerCase()));
    ctx.tag("route", through ? "upstream" : "direct");
    return { upstream: through ? chain : "direct" };
  },
} satisfies Addon<{ hosts: string; upstream: string }>;
