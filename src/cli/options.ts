/** Parsers for option values; each throws a usage error (exit 2) naming the bad value. */
import { isIP } from "node:net";
import type { Endpoint } from "../engine/index.js";
import { DURATION_EXAMPLES, SIZE_EXAMPLES, parseBytes, parseDuration as parseDurationText } from "../format/quantities.js";
import { usageError } from "./errors.js";

export const DEFAULT_PORT = 1080;

/**
 * A listen address: `HOST:PORT`, `[IPV6]:PORT`, `PORT` or `:PORT` (both on 127.0.0.1),
 * or `HOST` (port 1080). IPv6 addresses need brackets: `::1:1080` is itself an address.
 */
export function parseListen(text: string): Endpoint {
  const value = text.trim();
  if (/^\d+$/.test(value)) return { host: "127.0.0.1", port: parsePort(value, text) };
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(value);
  if (bracketed) {
    const host = bracketed[1]!;
    if (isIP(host) !== 6) throw usageError(`--listen: ${JSON.stringify(text)} is not an IPv6 address`);
    return { host, port: bracketed[2] === undefined ? DEFAULT_PORT : parsePort(bracketed[2], text) };
  }
  if (isIP(value) === 6) throw usageError(`--listen: write IPv6 addresses in brackets, e.g. [${value}]:1080 (got ${JSON.stringify(text)})`);
  const colon = value.lastIndexOf(":");
  const host = colon < 0 ? value : value.slice(0, colon) || "127.0.0.1";
  const port = colon < 0 ? DEFAULT_PORT : parsePort(value.slice(colon + 1), text);
  if (host.includes(":")) throw usageError(`--listen: write IPv6 addresses in brackets, e.g. [::1]:1080 (got ${JSON.stringify(text)})`);
  if (host === "" || /\s/.test(host)) throw usageError(`--listen: ${JSON.stringify(text)} has no host`);
  return { host, port };
}

function parsePort(text: string, whole: string): number {
  if (!/^\d+$/.test(text)) throw usageError(`--listen: ${JSON.stringify(whole)} has no valid port`);
  const port = Number(text);
  if (port > 65535) throw usageError(`--listen: port ${port} is out of range (0-65535)`);
  return port;
}

/** The longest timer Node keeps (setTimeout's limit); a longer duration is refused. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A duration in the grammar of `format/quantities.ts` (`500ms`, `15s`, `2m`, `1h`, or a plain
 * number of seconds; units in any case). Returns whole milliseconds (a fraction rounds to the nearest).
 */
export function parseDuration(text: string, option: string): number {
  const parsed = parseDurationText(text);
  if ("value" in parsed && parsed.value <= MAX_TIMER_MS) return Math.round(parsed.value);
  if ("problem" in parsed && parsed.problem !== "TOO_LARGE") {
    throw usageError(`${option}: ${JSON.stringify(text)} is not a duration (e.g. ${DURATION_EXAMPLES})`);
  }
  throw usageError(`${option}: ${JSON.stringify(text)} is too long`);
}

/** A whole number ≥ min. */
export function parseCount(text: string, option: string, min: number): number {
  if (!/^\d+$/.test(text.trim())) throw usageError(`${option}: ${JSON.stringify(text)} is not a whole number`);
  const n = Number(text);
  if (n < min) throw usageError(`${option}: must be at least ${min}`);
  return n;
}

/** Whether only this machine can reach an address. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * A size in bytes in the grammar of `format/quantities.ts` (`65536`, `64k`, `64KiB`, `10m`, `1g`:
 * powers of 1024, units in any case). Returns whole bytes (a fraction rounds down).
 */
export function parseSize(text: string, option: string): number {
  const parsed = parseBytes(text);
  if (!("problem" in parsed)) return Math.floor(parsed.value);
  if (parsed.problem === "TOO_LARGE") throw usageError(`${option}: ${JSON.stringify(text)} is too large`);
  throw usageError(`${option}: ${JSON.stringify(text)} is not a size (e.g. ${SIZE_EXAMPLES})`);
}
