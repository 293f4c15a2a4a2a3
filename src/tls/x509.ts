/**
 * The one door to @peculiar/x509: every module of `tls/` imports the library from here, never
 * directly, so that its Reflect polyfill is in place before the library is evaluated.
 *
 * @peculiar/x509 2.x resolves its parts through tsyringe, which throws at import time unless
 * `Reflect.getMetadata` exists; `reflect-metadata` provides it. ES modules evaluate their imports
 * in the order written, and the bundle (scripts/build.mjs) keeps that order for external packages.
 * Importing it costs about 100 ms, so the CLI loads `tls/` lazily (only `ca` and `run --tls`).
 */
import "reflect-metadata";
import { randomBytes, webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";

// Node's WebCrypto explicitly, rather than whatever `globalThis.crypto` is at the time.
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509 };

/** ECDSA on P-256 (key generation and import). */
export const P256: webcrypto.EcKeyImportParams = { name: "ECDSA", namedCurve: "P-256" };

/** ECDSA with SHA-256, the hash that matches P-256 (certificate signatures). */
export const ECDSA_SHA256: webcrypto.EcdsaParams = { name: "ECDSA", hash: "SHA-256" };

/**
 * A random positive certificate serial as hex: 16 bytes (128 bits, of which 126 are random), the
 * first byte in 0x40..0x7f so the DER INTEGER is positive, minimal and always 16 bytes long.
 */
export function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x3f) | 0x40;
  return bytes.toString("hex");
}

/** DER bytes as one PEM block (64-column base64, as OpenSSL writes it). */
export function toPem(label: string, der: ArrayBuffer | Uint8Array): string {
  const base64 = Buffer.from(der instanceof ArrayBuffer ? new Uint8Array(der) : der).toString("base64");
  return `-----BEGIN ${label}-----\n${base64.replace(/.{64}/g, "$&\n").replace(/\n$/, "")}\n-----END ${label}-----\n`;
}

/** The library's WebCrypto types (DOM names that this project's `lib` leaves out) for Node's keys. */
export type LibKeyPair = x509.X509CertificateCreateSelfSignedParams["keys"];
export type LibCryptoKey = x509.X509CertificateCreateWithKeyParams["signingKey"];

/** A certificate as PEM with "\n" line ends (the library writes "\r\n"). */
export function certificatePem(cert: x509.X509Certificate): string {
  return toPem("CERTIFICATE", cert.rawData);
}
