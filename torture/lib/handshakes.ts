/**
 * Client handshakes for fuzzing, pure: well-formed SOCKS4 / SOCKS4a / SOCKS5 scripts (greeting,
 * RFC 1929 sub-negotiation, request, first payload), mutated by byte flips, truncation,
 * extension, insertion, duplication and extreme length fields, then cut at random offsets.
 *
 * A script is what one client sends, all of it, without waiting for answers: the proxy must
 * cope with bytes that come early, late, split anywhere, or never. Requests name 127.0.0.1 (or
 * `localhost`) and the given port; mutations can make them name anything, which is why the
 * proxy under fuzz runs with the loopback guard addon (loopback-guard.ts).
 */
import type { Random } from "./random.js";

export type ScriptKind = "socks5" | "socks5-userpass" | "socks4" | "socks4a" | "random";

export interface Script {
  readonly kind: ScriptKind;
  /** The mutations applied, in order (empty: a well-formed script). */
  readonly mutations: readonly string[];
  /** The bytes, cut into the writes the client makes. */
  readonly pieces: readonly Buffer[];
}

/** One well-formed script of `kind` (not "random") to 127.0.0.1:port. */
export function wellFormed(kind: Exclude<ScriptKind, "random">, port: number, rng: Random): Buffer {
  const portBytes = Buffer.from([port >> 8, port & 0xff]);
  const payload = rng.chance(0.5) ? Buffer.from("GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n") : rng.bytes(rng.int(64));
  const command = rng.pick([1, 1, 1, 2, 3]);
  if (kind === "socks4" || kind === "socks4a") {
    const userid = Buffer.from(rng.chance(0.5) ? "" : `user${rng.int(1000)}`, "latin1");
    if (kind === "socks4")
      return Buffer.concat([Buffer.from([4, command === 3 ? 1 : command]), portBytes, Buffer.from([127, 0, 0, 1]), userid, Buffer.of(0), payload]);
    return Buffer.concat([
      Buffer.from([4, command === 3 ? 1 : command]),
      portBytes,
      Buffer.from([0, 0, 0, 1 + rng.int(255)]),
      userid,
      Buffer.of(0),
      Buffer.from("localhost\0"),
      payload,
    ]);
  }
  const userpass = kind === "socks5-userpass";
  const others = [1, 3, 0x80, 0xfe].filter(() => rng.chance(0.3));
  const methods = userpass ? [2, ...others] : [0, ...(rng.chance(0.3) ? [2] : []), ...others];
  const greeting = Buffer.from([5, methods.length, ...methods]);
  const user = Buffer.from(`u${rng.int(100)}`, "latin1");
  const pass = Buffer.from(`p${rng.int(100)}`, "latin1");
  const auth = userpass ? Buffer.concat([Buffer.from([1, user.length]), user, Buffer.from([pass.length]), pass]) : Buffer.alloc(0);
  const atyp = rng.pick([1, 1, 3, 4]);
  const address =
    atyp === 1
      ? Buffer.from([127, 0, 0, 1])
      : atyp === 4
        ? Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])
        : Buffer.concat([Buffer.from([9]), Buffer.from("127.0.0.1")]);
  const request = Buffer.concat([Buffer.from([5, command, 0, atyp]), address, portBytes]);
  return Buffer.concat([greeting, auth, request, payload]);
}

const MUTATIONS = ["flip-bit", "replace-byte", "truncate", "extend", "insert", "duplicate", "extreme-length", "delete"] as const;

/** One mutation of `bytes` (never empty afterwards unless truncated to nothing on purpose). */
export function mutate(bytes: Buffer, rng: Random): { name: string; bytes: Buffer } {
  const name = rng.pick(MUTATIONS);
  const at = rng.int(Math.max(1, bytes.length));
  switch (name) {
    case "flip-bit": {
      const out = Buffer.from(bytes);
      if (out.length > 0) out[at] = out[at]! ^ (1 << rng.int(8));
      return { name, bytes: out };
    }
    case "replace-byte": {
      const out = Buffer.from(bytes);
      if (out.length > 0) out[at] = rng.int(256);
      return { name, bytes: out };
    }
    case "truncate":
      return { name, bytes: bytes.subarray(0, at) };
    case "extend":
      return { name, bytes: Buffer.concat([bytes, rng.bytes(rng.range(1, 300))]) };
    case "insert":
      return { name, bytes: Buffer.concat([bytes.subarray(0, at), rng.bytes(rng.range(1, 16)), bytes.subarray(at)]) };
    case "duplicate": {
      const end = Math.min(bytes.length, at + rng.range(1, 16));
      return { name, bytes: Buffer.concat([bytes.subarray(0, end), bytes.subarray(at, end), bytes.subarray(end)]) };
    }
    case "extreme-length": {
      // Length-ish bytes (NMETHODS, ULEN, PLEN, a domain's length) sit early; make one 0 or 255.
      const out = Buffer.from(bytes);
      const where = rng.int(Math.min(out.length, 12));
      if (out.length > 0) out[where] = rng.pick([0, 1, 254, 255]);
      return { name, bytes: out };
    }
    case "delete": {
      const end = Math.min(bytes.length, at + rng.range(1, 8));
      return { name, bytes: Buffer.concat([bytes.subarray(0, at), bytes.subarray(end)]) };
    }
    default: {
      const unreachable: never = name;
      throw new Error(`unknown mutation ${String(unreachable)}`);
    }
  }
}

/** Cuts `bytes` at up to `maxCuts` random offsets (one piece when there are no cuts). */
export function split(bytes: Buffer, rng: Random, maxCuts: number): Buffer[] {
  if (bytes.length <= 1) return [bytes];
  const cuts = [...new Set(Array.from({ length: rng.int(maxCuts + 1) }, () => rng.range(1, bytes.length - 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let from = 0;
  for (const cut of cuts) {
    pieces.push(bytes.subarray(from, cut));
    from = cut;
  }
  pieces.push(bytes.subarray(from));
  return pieces;
}

/**
 * One fuzz script: 5 % random bytes, 15 % well-formed, the rest well-formed with 1–3
 * mutations; then split into 1–8 writes (a byte at a time now and then).
 */
export function fuzzScript(port: number, rng: Random): Script {
  if (rng.chance(0.05)) {
    const bytes = rng.bytes(rng.range(1, 400));
    return { kind: "random", mutations: [], pieces: split(bytes, rng, 4) };
  }
  const kind = rng.pick(["socks5", "socks5", "socks5-userpass", "socks4", "socks4a"] as const);
  let bytes = wellFormed(kind, port, rng);
  const mutations: string[] = [];
  if (!rng.chance(0.15)) {
    for (let i = rng.range(1, 3); i > 0; i--) {
      const m = mutate(bytes, rng);
      mutations.push(m.name);
      bytes = m.bytes;
    }
  }
  const pieces = rng.chance(0.03) && bytes.length <= 64 ? [...bytes].map((b) => Buffer.of(b)) : split(bytes, rng, 7);
  return { kind, mutations, pieces };
}
