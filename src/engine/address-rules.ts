/**
 * Rules about addresses that the handshake (session/machine.ts) and the UDP relay
 * (io/udp-association.ts) both apply, so a destination is refused for the same reasons whether
 * it came in a request or in a datagram's header.
 */
import { isIP } from "node:net";
import { protocolError, type ProtocolError } from "./errors.js";
import { isUnspecifiedIPv6, normalizeHost } from "./codec/address.js";

/** Destinations nobody should dial: port 0, unspecified addresses, malformed names. */
export function checkDestination(host: string, port: number): ProtocolError | undefined {
  if (port === 0) return protocolError("BAD_PORT", "destination port 0");
  if (isIP(host) !== 0) {
    // Any spelling: 0:0:0:0:0:0:0:0, ::0, ::ffff:0.0.0.0 all reach the proxy host itself.
    // Only IPv6 text has a colon: IPv4 skips the IPv6 parse.
    if (normalizeHost(host) === "0.0.0.0" || (host.includes(":") && isUnspecifiedIPv6(host)))
      return protocolError("BAD_DESTINATION", `unspecified address ${host}`);
    return undefined;
  }
  if (host.length === 0) return protocolError("BAD_DESTINATION", "empty hostname");
  if (host.length > 253 || !HOSTNAME.test(host)) return protocolError("BAD_DESTINATION", `malformed hostname ${JSON.stringify(host)}`);
  return undefined;
}

/** LDH labels (plus `_`, common in real names), dot-separated, optional trailing dot. */
const HOSTNAME = /^(?!-)[A-Za-z0-9_-]{1,63}(?:\.[A-Za-z0-9_-]{1,63})*\.?$/;
