/**
 * Leaf certificates for intercepted clients, signed by the socksmith CA, one `tls.SecureContext`
 * per set of names.
 *
 * Contracts:
 * - One leaf key pair (ECDSA P-256) per `LeafCertificates`, made on first use: a new host costs one
 *   signature, not a key generation. The interceptor keeps one instance per process.
 * - Names (see `leafNames`): the client's SNI, the upstream certificate's DNS and IP SANs, and the
 *   target as requested (a DNS SAN for a name, an IP SAN for an address); names are IDNA-encoded
 *   (punycode) and lower-cased, IPs written canonically, duplicates removed.
 * - The leaf: CN = the first DNS name when shorter than 64 characters (else the first address);
 *   O copied from the upstream's subject; basicConstraints CA false and keyUsage digitalSignature
 *   (both critical); EKU serverAuth; AKI = the CA's SKI; no SKI (SChannel mishandles leaves that
 *   carry one); a random positive serial; SHA-256; valid from 2 days ago (clock skew) to 197 days
 *   ahead: 199 days in all, under Chromium's 200-day limit for certificates from local CAs.
 * - Cached by name set (and O), least recently used out beyond `capacity` (256). Concurrent
 *   requests for one set share one generation; a failed generation is not cached. A cached leaf
 *   within a day of its end is made again.
 * - The SecureContext's chain is the leaf then the CA certificate.
 */
import { X509Certificate, webcrypto } from "node:crypto";
import { isIP } from "node:net";
import { createSecureContext, type SecureContext } from "node:tls";
import { domainToASCII } from "node:url";
import ipaddr from "ipaddr.js";
import type { CertificateAuthority } from "./ca.js";
import { PROXY_CIPHERS } from "./ciphers.js";
import { certificatePem, ECDSA_SHA256, type LibCryptoKey, type LibKeyPair, P256, randomSerial, toPem, x509 } from "./x509.js";

const DAY_MS = 24 * 60 * 60 * 1000;
const BACKDATE_MS = 2 * DAY_MS;
const VALIDITY_AHEAD_MS = 197 * DAY_MS;
const RENEW_BEFORE_MS = DAY_MS;
/** X.520 upper bounds for commonName and organizationName. */
const MAX_NAME_CHARS = 64;

export const DEFAULT_LEAF_CAPACITY = 256;

/** What a leaf is for. */
export interface LeafRequest {
  /** The client's server_name, when it sent one. */
  readonly sni?: string;
  /** The destination as requested: a host name or an IP address (IPv6 with or without brackets). */
  readonly target: string;
  /** The upstream's leaf certificate, whose names and organisation the leaf mirrors. */
  readonly upstream?: X509Certificate;
}

/** The names a leaf carries. */
export interface LeafNames {
  /** DNS SANs, ASCII (punycode), lower case; the SNI first when there is one. */
  readonly dns: readonly string[];
  /** IP SANs, canonical text. */
  readonly ip: readonly string[];
  /** The subject's O, copied from the upstream certificate. */
  readonly organization?: string;
}

/** One generated leaf. */
export interface Leaf {
  readonly names: LeafNames;
  readonly certPem: string;
  readonly certificate: X509Certificate;
  /** Leaf + CA chain with the process's leaf key. */
  readonly context: SecureContext;
  readonly notAfter: Date;
}

/** Thrown (rejected) when a request has no name a certificate can carry (an invalid target and no SNI). */
export class LeafNameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LeafNameError";
  }
}

/** The names for a request, in order: SNI, the upstream's SANs, the target. Pure apart from parsing the upstream certificate. */
export function leafNames(req: LeafRequest): LeafNames {
  const dns = new Set<string>();
  const ip = new Set<string>();
  let organization: string | undefined;
  if (req.sni !== undefined) addHost(req.sni, dns, ip);
  if (req.upstream !== undefined) {
    const upstream = upstreamNames(req.upstream);
    for (const name of upstream.dns) addHost(name, dns, ip);
    for (const address of upstream.ip) addHost(address, dns, ip);
    organization = upstream.organization;
  }
  addHost(req.target, dns, ip);
  return organization === undefined ? { dns: [...dns], ip: [...ip] } : { dns: [...dns], ip: [...ip], organization };
}

function addHost(text: string, dns: Set<string>, ip: Set<string>): void {
  let host = text.trim();
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  // A zone (fe80::1%eth0) means nothing outside this machine; a certificate cannot carry it.
  const address = host.replace(/%.*$/, "");
  if (isIP(address) !== 0) {
    ip.add(ipaddr.parse(address).toString());
    return;
  }
  if (host.endsWith(".")) host = host.slice(0, -1);
  // IDNA (UTS #46) to ASCII, lower-cased; "" when the name is not a valid host name.
  const ascii = domainToASCII(host);
  if (ascii !== "" && ascii.length <= 253 && isIP(ascii) === 0) dns.add(ascii);
  else if (ascii !== "" && isIP(ascii) !== 0) ip.add(ipaddr.parse(ascii).toString());
}

type UpstreamNames = { readonly dns: readonly string[]; readonly ip: readonly string[]; readonly organization?: string };

/**
 * Upstream certificates' names by fingerprint: every intercepted handshake to a host brings the
 * same certificate, and parsing it with the X.509 library took 0.5–1.7 ms (about a tenth of the
 * proxy's CPU in the TLS handshake benchmark); the native fingerprint costs microseconds.
 */
const parsedUpstreams = new Map<string, UpstreamNames>();
const PARSED_UPSTREAMS_MAX = 256;

/** The upstream's DNS and IP SANs and its O; nothing when the library cannot parse what Node could. */
function upstreamNames(cert: X509Certificate): UpstreamNames {
  const key = cert.fingerprint256;
  const known = parsedUpstreams.get(key);
  if (known !== undefined) return known;
  const names = parseUpstreamNames(cert);
  if (parsedUpstreams.size >= PARSED_UPSTREAMS_MAX) parsedUpstreams.delete(parsedUpstreams.keys().next().value!);
  parsedUpstreams.set(key, names);
  return names;
}

function parseUpstreamNames(cert: X509Certificate): UpstreamNames {
  try {
    const parsed = new x509.X509Certificate(cert.raw);
    const items = parsed.getExtension(x509.SubjectAlternativeNameExtension)?.names.items ?? [];
    const organization = parsed.subjectName.getField("O")[0];
    const names = {
      dns: items.filter((n) => n.type === "dns").map((n) => n.value),
      ip: items.filter((n) => n.type === "ip").map((n) => n.value),
    };
    return organization !== undefined && organization !== "" && organization.length <= MAX_NAME_CHARS ? { ...names, organization } : names;
  } catch {
    return { dns: [], ip: [] };
  }
}

interface LeafKey {
  readonly keys: webcrypto.CryptoKeyPair;
  readonly pem: string;
}

interface Entry {
  readonly promise: Promise<Leaf>;
  /** Set once the promise has resolved. */
  leaf?: Leaf;
}

/** Leaves and their SecureContexts for one CA; see the module comment. */
export class LeafCertificates {
  readonly #ca: CertificateAuthority;
  readonly #capacity: number;
  readonly #now: () => number;
  readonly #cache = new Map<string, Entry>();
  #key: Promise<LeafKey> | undefined;
  #generated = 0;

  /** `capacity`: name sets kept (256); `now`: the clock for validity and renewal, epoch ms (tests move it). */
  constructor(ca: CertificateAuthority, options: { readonly capacity?: number; readonly now?: () => number } = {}) {
    this.#ca = ca;
    this.#capacity = Math.max(1, options.capacity ?? DEFAULT_LEAF_CAPACITY);
    this.#now = options.now ?? Date.now;
  }

  /** How many leaves this instance has signed (cache misses that completed). */
  get generated(): number {
    return this.#generated;
  }

  /** How many name sets the cache holds. */
  get size(): number {
    return this.#cache.size;
  }

  /** The server-side SecureContext for a request (leaf + CA chain); rejects with LeafNameError when there is no usable name. */
  async secureContextFor(req: LeafRequest): Promise<SecureContext> {
    return (await this.leafFor(req)).context;
  }

  /** The leaf certificate's PEM for a request (for tests and diagnostics). */
  async leafPemFor(req: LeafRequest): Promise<string> {
    return (await this.leafFor(req)).certPem;
  }

  /** The whole leaf for a request, from the cache when there is one. */
  leafFor(req: LeafRequest): Promise<Leaf> {
    let names: LeafNames;
    try {
      names = leafNames(req);
    } catch (err) {
      return Promise.reject(err);
    }
    if (names.dns.length === 0 && names.ip.length === 0) {
      return Promise.reject(new LeafNameError(`no name for a certificate: target ${JSON.stringify(req.target)} and no usable SNI`));
    }
    const key = JSON.stringify([[...names.dns].sort(), [...names.ip].sort(), names.organization ?? null]);
    const cached = this.#cache.get(key);
    if (cached !== undefined) {
      this.#cache.delete(key);
      const stale = cached.leaf !== undefined && cached.leaf.notAfter.getTime() - this.#now() < RENEW_BEFORE_MS;
      if (!stale) {
        this.#cache.set(key, cached);
        return cached.promise;
      }
    }
    const entry: Entry = { promise: this.#generate(names) };
    this.#cache.set(key, entry);
    entry.promise.then(
      (leaf) => void (entry.leaf = leaf),
      () => {
        if (this.#cache.get(key) === entry) this.#cache.delete(key);
      },
    );
    while (this.#cache.size > this.#capacity) this.#cache.delete(this.#cache.keys().next().value!);
    return entry.promise;
  }

  #leafKey(): Promise<LeafKey> {
    if (this.#key === undefined) {
      const made = (async () => {
        const keys = (await webcrypto.subtle.generateKey(P256, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
        return { keys, pem: toPem("PRIVATE KEY", await webcrypto.subtle.exportKey("pkcs8", keys.privateKey)) };
      })();
      this.#key = made;
      made.catch(() => {
        if (this.#key === made) this.#key = undefined;
      });
    }
    return this.#key;
  }

  async #generate(names: LeafNames): Promise<Leaf> {
    const ca = this.#ca;
    const key = await this.#leafKey();
    const now = this.#now();
    const notAfter = new Date(Math.min(now + VALIDITY_AHEAD_MS, ca.notAfter.getTime()));
    const first = names.dns[0] !== undefined && names.dns[0].length < MAX_NAME_CHARS ? names.dns[0] : names.ip[0];
    const subject: Record<string, string[]>[] = [];
    if (first !== undefined) subject.push({ CN: [first] });
    if (names.organization !== undefined) subject.push({ O: [names.organization] });
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject,
      issuer: ca.subjectName,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter,
      signingAlgorithm: ECDSA_SHA256,
      publicKey: key.keys.publicKey as unknown as LibCryptoKey,
      signingKey: ca.signingKey as unknown as LibKeyPair["privateKey"],
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension([
          ...names.dns.map((value) => ({ type: "dns" as const, value })),
          ...names.ip.map((value) => ({ type: "ip" as const, value })),
        ]),
        new x509.AuthorityKeyIdentifierExtension(ca.keyId),
      ],
    });
    const certPem = certificatePem(cert);
    // Our cipher order, not the client's (see ciphers.ts).
    const context = createSecureContext({ key: key.pem, cert: certPem + ca.certPem, ciphers: PROXY_CIPHERS, honorCipherOrder: true });
    this.#generated++;
    return { names, certPem, certificate: new X509Certificate(certPem), context, notAfter };
  }
}
