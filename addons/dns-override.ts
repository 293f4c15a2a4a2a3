/**
 * Answers DNS queries sent through UDP ASSOCIATE for chosen names, locally: point an app's
 * `api.internal` at your laptop without touching /etc/hosts or the resolver. Queries for other
 * names go to their DNS server as usual.
 *
 *   npx socksmith -s addons/dns-override.ts \
 *                 --set dns-override.names='api.internal=127.0.0.1,*.staging.test=::1'
 *
 * A name maps to an IPv4 address (answers A queries) or an IPv6 one (answers AAAA). A query of the
 * other type for a mapped name gets an empty NOERROR answer, so the client does not look further.
 */
import { isIP } from "node:net";
import type { Addon } from "socksmith/addon";

interface Mapping {
  readonly pattern: RegExp;
  readonly address: string;
}

let mappings: Mapping[] = [];

function globToRegExp(glob: string): RegExp {
  const escaped = glob
    .trim()
    .toLowerCase()
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${escaped}$`);
}

const TYPE_A = 1;
const TYPE_AAAA = 28;

/** The single question of a standard query: name, type, and where the question ends. */
function question(query: Uint8Array): { name: string; type: number; end: number } | undefined {
  const b = Buffer.from(query);
  // QR = 0 (a query), OPCODE = 0 (standard), exactly one question.
  if (b.length < 17 || (b[2]! & 0xf8) !== 0 || b.readUInt16BE(4) !== 1) return undefined;
  const labels: string[] = [];
  let i = 12;
  while (i < b.length && b[i] !== 0) {
    const length = b[i]!;
    if (length > 63 || i + 1 + length > b.length) return undefined;
    labels.push(b.toString("latin1", i + 1, i + 1 + length));
    i += 1 + length;
  }
  if (i + 5 > b.length) return undefined;
  return { name: labels.join(".").toLowerCase(), type: b.readUInt16BE(i + 1), end: i + 5 };
}

/** The answer to `query`: its header and question, then one record when the type fits. */
function answer(query: Uint8Array, q: { type: number; end: number }, address: string, ttl: number): Buffer {
  const family = isIP(address);
  const fits = (q.type === TYPE_A && family === 4) || (q.type === TYPE_AAAA && family === 6);
  const header = Buffer.from(query.subarray(0, q.end));
  // QR = 1, AA = 1, RD copied, RA = 1, RCODE = 0; one answer or none; no authority or additional.
  header.writeUInt16BE(0x8480 | (header.readUInt16BE(2) & 0x0100), 2);
  header.writeUInt16BE(fits ? 1 : 0, 6);
  header.writeUInt32BE(0, 8);
  if (!fits) return header;
  const rdata = family === 4 ? Buffer.from(address.split(".").map(Number)) : ipv6Bytes(address);
  const record = Buffer.alloc(12);
  record.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
  record.writeUInt16BE(q.type, 2);
  record.writeUInt16BE(1, 4); // class IN
  record.writeUInt32BE(ttl, 6);
  record.writeUInt16BE(rdata.length, 10);
  return Buffer.concat([header, record, rdata]);
}

function ipv6Bytes(address: string): Buffer {
  const [head, tail] = address.split("::") as [string, string | undefined];
  const words = (s: string | undefined) => (s === undefined || s === "" ? [] : s.split(":").map((w) => parseInt(w, 16)));
  const left = words(head);
  const right = words(tail);
  const all = tail === undefined ? left : [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  const out = Buffer.alloc(16);
  all.forEach((w, i) => out.writeUInt16BE(w, i * 2));
  return out;
}

export default {
  name: "dns-override",
  options: {
    names: { type: "string", default: "", description: "comma-separated NAME=ADDRESS pairs; NAME may use * and ?" },
    port: { type: "number", default: 53, description: "the DNS port queries go to" },
    ttl: { type: "number", default: 60, description: "TTL of the answers, in seconds" },
  },
  onLoad({ options, log }) {
    mappings = [];
    for (const pair of String(options.names)
      .split(",")
      .map((p) => p.trim())
      .filter(Boolean)) {
      const [name, address] = pair.split("=").map((s) => s.trim());
      if (!name || !address || isIP(address) === 0) throw new Error(`names: ${JSON.stringify(pair)} is not NAME=IP`);
      mappings.push({ pattern: globToRegExp(name), address });
    }
    log(`answering ${mappings.length} name pattern${mappings.length === 1 ? "" : "s"} locally`);
  },
  onDatagram(datagram, ctx) {
    if (datagram.direction !== "up" || datagram.peer.port !== Number(ctx.options.port)) return undefined;
    const q = question(datagram.data);
    if (q === undefined) return undefined;
    const hit = mappings.find((m) => m.pattern.test(q.name));
    if (hit === undefined) return undefined;
    ctx.tag("dns-override", q.name);
    ctx.injectDatagram(datagram.peer, answer(datagram.data, q, hit.address, Number(ctx.options.ttl)));
    // Answered here: the query goes nowhere.
    return { drop: true };
  },
} satisfies Addon<{ names: string; port: number; ttl: number }>;
