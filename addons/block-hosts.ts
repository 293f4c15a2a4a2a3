/**
 * Refuses destinations by host glob and by CIDR, with REP 02 ("connection not allowed by
 * ruleset"). The name patterns match the host the client sent; the CIDRs match IP literals.
 *
 *   npx socksmith -s addons/block-hosts.ts --set block-hosts.hosts='*.doubleclick.net,ads.*' \
 *                 --set block-hosts.cidrs='10.0.0.0/8,169.254.0.0/16'
 */
import { BlockList, isIP } from "node:net";
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

let hostPatterns: RegExp[] = [];
let blocked = new BlockList();

export default {
  name: "block-hosts",
  options: {
    hosts: { type: "string", default: "", description: "comma-separated host globs, e.g. *.example.com" },
    cidrs: { type: "string", default: "", description: "comma-separated CIDRs, e.g. 10.0.0.0/8,fd00::/8" },
  },
  onLoad({ options }) {
    hostPatterns = String(options.hosts)
      .split(",")
      .filter((h) => h.trim() !== "")
      .map(globToRegExp);
    blocked = new BlockList();
    for (const cidr of String(options.cidrs)
      .split(",")
      .map((c) => c.trim())
      .filter(Boolean)) {
      const [network, prefix] = cidr.split("/");
      const family = isIP(network ?? "") === 6 ? "ipv6" : "ipv4";
      blocked.addSubnet(network!, Number(prefix ?? (family === "ipv6" ? 128 : 32)), family);
    }
  },
  onRequest(request, ctx) {
    const host = request.host.toLowerCase();
    const family = isIP(host);
    const hit = hostPatterns.some((p) => p.test(host)) || (family !== 0 && blocked.check(host, family === 6 ? "ipv6" : "ipv4"));
    if (!hit) return undefined;
    ctx.tag("blocked", host);
    return { deny: 2 };
  },
} satisfies Addon<{ hosts: string; cidrs: string }>;
