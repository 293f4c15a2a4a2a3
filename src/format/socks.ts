/**
 * SOCKS facts as short text: reply codes and endpoints.
 */
import { REP_NAMES, socks4Cd } from "../engine/index.js";

/** `host:port`, IPv6 in brackets: the engine's own, re-exported so views import one module. */
export { formatEndpoint } from "../engine/index.js";

/**
 * A reply as its wire code and the engine's name for the reason. `rep` is the SOCKS5 REP the
 * engine decided (the store keeps SOCKS4 replies as their REP too).
 *
 * - SOCKS5 (and unknown version): REP in hex, `00 ok`, `05 refused`, `09 ?` for an unnamed code.
 * - SOCKS4/4a: the CD actually sent, in decimal as SOCKS4.protocol writes it, with the REP's
 *   name for the reason: `90 ok`, `91 refused`, `91 not allowed`.
 * - No reply yet (`rep` null): `-`.
 */
export function formatReply(rep: number | null, version: "4" | "4a" | "5" | null): string {
  if (rep === null) return "-";
  const name = REP_NAMES[rep] ?? "?";
  if (version === "4" || version === "4a") return `${socks4Cd(rep)} ${name}`;
  return `${rep.toString(16).padStart(2, "0")} ${name}`;
}
