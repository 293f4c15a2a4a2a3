/**
 * TLS ClientHello detection (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2): reassembles the first
 * handshake message from one or more handshake records and reads SNI, ALPN and the offered
 * version. Total; decides "unknown" at the first record header, handshake header or hello field
 * that breaks the structure (inside an extension, once the extension is whole).
 */
import { NEED_MORE, UNKNOWN, latin1, type Detection, type Scanner } from "./detection.js";

/** TLSPlaintext.type handshake (RFC 8446 §5.1). */
export const CONTENT_TYPE_HANDSHAKE = 22;
/** HandshakeType client_hello (RFC 8446 §4). */
export const HANDSHAKE_CLIENT_HELLO = 1;
/** Extension types (RFC 8446 §4.2, RFC 6066 §3, RFC 7301 §3.1). */
export const EXT_SERVER_NAME = 0;
export const EXT_APPLICATION_LAYER_PROTOCOL_NEGOTIATION = 16;
export const EXT_SUPPORTED_VERSIONS = 43;
/** NameType host_name (RFC 6066 §3). */
export const NAME_TYPE_HOST_NAME = 0;

/** TLSPlaintext.length MUST NOT exceed 2^14 (RFC 8446 §5.1). */
const MAX_RECORD_PAYLOAD = 1 << 14;
const RECORD_HEADER = 5;
const HANDSHAKE_HEADER = 4;

const VERSION_NAMES: Readonly<Record<number, string>> = {
  0x0300: "SSL 3.0",
  0x0301: "TLS 1.0",
  0x0302: "TLS 1.1",
  0x0303: "TLS 1.2",
  0x0304: "TLS 1.3",
};

export function tlsVersionName(version: number): string {
  return VERSION_NAMES[version] ?? `0x${version.toString(16).padStart(4, "0")}`;
}

/** GREASE values (RFC 8701 §2): 0x0A0A, 0x1A1A, … 0xFAFA. */
export function isGrease(value: number): boolean {
  return (value & 0x0f0f) === 0x0a0a && value >> 8 === (value & 0xff);
}

/**
 * Detects a ClientHello at the start of `bytes` (everything the client sent so far, at most
 * `limit` bytes of it). "need-more" for every proper prefix of a well-formed ClientHello;
 * "unknown" for anything else, including a hello that could not fit in `limit` bytes.
 */
export function detectTls(bytes: Uint8Array, limit: number): Detection {
  return new TlsClientHelloScanner(limit).scan(bytes);
}

type Tls = Extract<Detection, { kind: "tls" }>;

/**
 * The incremental form (see Scanner): record payload bytes are copied once into the handshake
 * buffer, and the extensions are read once each, so a client trickling its hello a byte (or a
 * one-byte record) at a time costs linear, not quadratic, work.
 */
export class TlsClientHelloScanner implements Scanner {
  /** Offset in the input of the current record's header. */
  private recordAt = 0;
  /** Offset in the input where the current record's payload ends; -1 until its header is read. */
  private recordEnd = -1;
  /** Offset in the input up to which payload has been copied into `handshake`. */
  private copied = 0;
  /** The first handshake message's bytes so far (header included). */
  private handshake = new Uint8Array(0);
  private handshakeLength = 0;
  /** The first message's full length, header included, once its header is in. */
  private needed = Infinity;
  /** Offset in the hello body of the next extension to read; -1 until the fixed part is read. */
  private extensionAt = -1;
  // What the extensions read so far said (each is read once, when whole).
  private sni: string | undefined;
  private alpn: readonly string[] = [];
  private offered: readonly number[] | undefined;
  private seen = new Set<number>();
  private answer: Detection = NEED_MORE;

  constructor(private readonly limit: number) {}

  scan(bytes: Uint8Array): Detection {
    if (this.answer.kind === "need-more") this.answer = this.step(bytes);
    return this.answer;
  }

  private step(bytes: Uint8Array): Detection {
    if (!this.gather(bytes)) return UNKNOWN;
    //   struct { HandshakeType msg_type; uint24 length; ClientHello body; } Handshake;
    const data = this.handshake.subarray(0, this.handshakeLength);
    if (data.length < 1) return NEED_MORE;
    if (data[0] !== HANDSHAKE_CLIENT_HELLO) return UNKNOWN;
    if (data.length < HANDSHAKE_HEADER) return NEED_MORE;
    const hello = this.parseClientHello(data.subarray(HANDSHAKE_HEADER), this.needed - HANDSHAKE_HEADER);
    if (hello === "need-more") return NEED_MORE;
    if (hello === "bad") return UNKNOWN;
    return hello;
  }

  /**
   * Copies handshake record payload (RFC 8446 §5.1: a handshake message may span records, and
   * no other record type may come between its fragments) until the first message is whole or
   * the input runs out. Checks each record header as far as it is present; false when one is
   * impossible or the message cannot fit in `limit` bytes.
   */
  private gather(bytes: Uint8Array): boolean {
    while (this.handshakeLength < this.needed) {
      if (this.recordEnd < 0) {
        //   struct { ContentType type; ProtocolVersion legacy_record_version; uint16 length; … }
        const at = this.recordAt;
        if (at >= bytes.length) return true;
        if (bytes[at] !== CONTENT_TYPE_HANDSHAKE) return false;
        if (at + 1 < bytes.length && bytes[at + 1] !== 3) return false;
        if (at + 2 < bytes.length && bytes[at + 2]! > 4) return false;
        if (at + 4 >= bytes.length) return true;
        const length = (bytes[at + 3]! << 8) | bytes[at + 4]!;
        // Zero-length handshake fragments are forbidden (RFC 8446 §5.1).
        if (length === 0 || length > MAX_RECORD_PAYLOAD) return false;
        this.copied = at + RECORD_HEADER;
        this.recordEnd = this.copied + length;
      }
      const upTo = Math.min(bytes.length, this.recordEnd, this.copied + (this.needed - this.handshakeLength));
      if (upTo > this.copied) {
        this.append(bytes.subarray(this.copied, upTo));
        this.copied = upTo;
      }
      if (this.needed === Infinity && this.handshakeLength >= HANDSHAKE_HEADER) {
        const h = this.handshake;
        this.needed = HANDSHAKE_HEADER + ((h[1]! << 16) | (h[2]! << 8) | h[3]!);
        // The fewest bytes that can carry it: full-size records, each with its header.
        if (this.needed + RECORD_HEADER * Math.ceil(this.needed / MAX_RECORD_PAYLOAD) > this.limit) return false;
        this.handshakeLength = Math.min(this.handshakeLength, this.needed);
      }
      if (this.handshakeLength >= this.needed || this.copied < this.recordEnd) return true;
      this.recordAt = this.recordEnd;
      this.recordEnd = -1;
    }
    return true;
  }

  private append(piece: Uint8Array): void {
    const size = this.handshakeLength + piece.length;
    if (size > this.handshake.length) {
      const grown = new Uint8Array(Math.max(size, Math.min(this.limit, Math.max(this.handshake.length * 2, 512))));
      grown.set(this.handshake.subarray(0, this.handshakeLength));
      this.handshake = grown;
    }
    this.handshake.set(piece, this.handshakeLength);
    this.handshakeLength = size;
  }

  /**
   *   struct {
   *       ProtocolVersion legacy_version;
   *       Random random;                                   32 bytes
   *       opaque legacy_session_id<0..32>;
   *       CipherSuite cipher_suites<2..2^16-2>;            2 bytes each
   *       opaque legacy_compression_methods<1..2^8-1>;
   *       Extension extensions<8..2^16-1>;                 absent in some TLS ≤ 1.2 hellos
   *   } ClientHello;
   *
   * `body` is what is here of the declared `length` bytes. The fixed part is read again on
   * every call (a few reads); extensions from where the last call left off.
   */
  private parseClientHello(body: Uint8Array, length: number): Tls | "need-more" | "bad" {
    const r = new Reader(body);
    const major = r.u8(length);
    const minor = r.u8(length);
    if (r.ok && major !== 3) r.reject();
    r.take(32, length);
    const sessionId = r.u8(length);
    if (r.ok && sessionId > 32) r.reject();
    r.take(sessionId, length);
    const suites = r.u16(length);
    if (r.ok && (suites < 2 || suites % 2 !== 0)) r.reject();
    r.take(suites, length);
    const compression = r.u8(length);
    if (r.ok && compression < 1) r.reject();
    r.take(compression, length);
    if (r.ok && r.pos < length) {
      //   struct { ExtensionType extension_type; opaque extension_data<0..2^16-1>; } Extension;
      const extensionsLength = r.u16(length);
      if (r.ok && r.pos + extensionsLength !== length) r.reject();
    }
    if (!r.ok) return r.status as "need-more" | "bad";

    if (this.extensionAt < 0) this.extensionAt = r.pos;
    r.pos = this.extensionAt;
    while (r.pos < length) {
      const type = r.u16(length);
      const size = r.u16(length);
      const end = r.pos + size;
      // "There MUST NOT be more than one extension of the same type" (RFC 8446 §4.2).
      if (r.ok && (end > length || this.seen.has(type))) r.reject();
      if (!r.ok) return r.status as "need-more" | "bad";
      // Read an extension only once it is whole: then it is read once, and a failure is final.
      if (end > body.length) return "need-more";
      switch (type) {
        case EXT_SERVER_NAME:
          this.sni = readServerName(r, end);
          break;
        case EXT_APPLICATION_LAYER_PROTOCOL_NEGOTIATION:
          this.alpn = readAlpn(r, end);
          break;
        case EXT_SUPPORTED_VERSIONS:
          this.offered = readSupportedVersions(r, end);
          break;
        default:
          r.take(size, end);
      }
      if (r.ok && r.pos !== end) r.reject();
      if (!r.ok) return r.status as "need-more" | "bad";
      this.seen.add(type);
      this.extensionAt = end;
    }

    const version = tlsVersionName(offeredVersion(this.offered) ?? (major << 8) | minor);
    const { sni, alpn } = this;
    return sni === undefined ? { kind: "tls", alpn, version } : { kind: "tls", sni, alpn, version };
  }
}

/**
 * Reads a structure whose declared size is known but whose bytes may not all be here yet. A
 * read past its enclosing structure's `end` is "bad"; a read past the available bytes is
 * "need-more". The first failure sticks and later reads return 0, so callers check `ok` before
 * trusting a value; `reject` never turns need-more into bad.
 */
class Reader {
  pos = 0;
  status: "ok" | "need-more" | "bad" = "ok";

  constructor(private readonly bytes: Uint8Array) {}

  private has(n: number, end: number): boolean {
    if (this.status !== "ok") return false;
    if (this.pos + n > end) this.status = "bad";
    else if (this.pos + n > this.bytes.length) this.status = "need-more";
    return this.status === "ok";
  }

  u8(end: number): number {
    return this.has(1, end) ? this.bytes[this.pos++]! : 0;
  }

  u16(end: number): number {
    if (!this.has(2, end)) return 0;
    const v = (this.bytes[this.pos]! << 8) | this.bytes[this.pos + 1]!;
    this.pos += 2;
    return v;
  }

  take(n: number, end: number): Uint8Array {
    if (!this.has(n, end)) return new Uint8Array(0);
    this.pos += n;
    return this.bytes.subarray(this.pos - n, this.pos);
  }

  reject(): void {
    if (this.status === "ok") this.status = "bad";
  }

  get ok(): boolean {
    return this.status === "ok";
  }
}

/**
 *   struct { NameType name_type; select (name_type) { case host_name: HostName; } name; } ServerName;
 *   opaque HostName<1..2^16-1>;
 *   struct { ServerName server_name_list<1..2^16-1> } ServerNameList;
 *
 * Other name types are read as opaque<1..2^16-1> too, as every implementation does. An empty
 * extension_data is legal in a ServerHello only, so it is rejected here.
 */
function readServerName(r: Reader, end: number): string | undefined {
  const listLength = r.u16(end);
  if (r.ok && (listLength < 1 || r.pos + listLength !== end)) r.reject();
  let name: string | undefined;
  while (r.ok && r.pos < end) {
    const type = r.u8(end);
    const size = r.u16(end);
    if (r.ok && size < 1) r.reject();
    const bytes = r.take(size, end);
    if (r.ok && type === NAME_TYPE_HOST_NAME && name === undefined) name = latin1(bytes);
  }
  return name;
}

/**
 *   opaque ProtocolName<1..2^8-1>;
 *   struct { ProtocolName protocol_name_list<2..2^16-1> } ProtocolNameList;
 */
function readAlpn(r: Reader, end: number): string[] {
  const listLength = r.u16(end);
  if (r.ok && (listLength < 2 || r.pos + listLength !== end)) r.reject();
  const names: string[] = [];
  while (r.ok && r.pos < end) {
    const size = r.u8(end);
    if (r.ok && size < 1) r.reject();
    const bytes = r.take(size, end);
    if (r.ok) names.push(latin1(bytes));
  }
  return names;
}

/** In a ClientHello: `ProtocolVersion versions<2..254>;` (RFC 8446 §4.2.1). */
function readSupportedVersions(r: Reader, end: number): number[] {
  const listLength = r.u8(end);
  if (r.ok && (listLength < 2 || listLength % 2 !== 0 || r.pos + listLength !== end)) r.reject();
  const versions: number[] = [];
  while (r.ok && r.pos < end) versions.push(r.u16(end));
  return versions;
}

/** The highest non-GREASE 3.x version offered, else the first non-GREASE one (a draft, say). */
function offeredVersion(offered: readonly number[] | undefined): number | undefined {
  if (offered === undefined) return undefined;
  const real = offered.filter((v) => !isGrease(v));
  const tls = real.filter((v) => v >> 8 === 3);
  return tls.length > 0 ? Math.max(...tls) : real[0];
}
