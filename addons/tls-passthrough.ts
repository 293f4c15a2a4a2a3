/**
 * With `--tls`: leaves the TLS of listed hosts alone (apps that pin their certificates, banking,
 * anything you do not want decrypted) and intercepts every other ClientHello. A host matches by
 * the name the client asked for (SNI), or by the requested destination when it sent none (a
 * client dialling an IP). Each decision is tagged `tls=passthrough` or `tls=intercept`; once an
 * intercepted session ends, `tls-negotiated` says what the client negotiated ("TLSv1.3 h2").
 *
 *   npx socksmith run --tls -s addons/tls-passthrough.ts --set tls-passthrough.hosts='*.apple.com,bank.example,10.0.0.*'
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

export default {
  name: "tls-passthrough",
  options: {
    hosts: { type: "string", default: "", description: "comma-separated host globs whose TLS passes through untouched, e.g. *.apple.com" },
  },
  onLoad({ options }) {
    patterns = String(options.hosts)
      .split(",")
      .filter((h) => h.trim() !== "")
      .map(globToRegExp);
  },
  onTlsClientHello(hello, ctx) {
    const name = (hello.sni ?? hello.target.host).toLowerCase();
    const passthrough = patterns.some((p) => p.test(name));
    ctx.tag("tls", passthrough ? "passthrough" : "intercept");
    return passthrough ? { passthrough: true } : { intercept: true };
  },
  onClose(_summary, ctx) {
    const tls = ctx.session.tls;
    if (tls?.intercepted === true && tls.version !== undefined) ctx.tag("tls-negotiated", `${tls.version} ${tls.alpn ?? "no-alpn"}`);
  },
} satisfies Addon<{ hosts: string }>;
