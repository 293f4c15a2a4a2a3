/**
 * The socksmith CA: one per user, made on first use, that signs the leaf certificates shown to
 * intercepted clients (`tls/certificates.ts`) and that the user tells those clients to trust
 * (`socksmith ca`).
 *
 * Files, in the CA directory (`defaultCaDir()` or `--ca-dir`, created 0700):
 * - `socksmith-ca.pem`: the certificate (0644 before the umask): ECDSA P-256, SHA-256, 10 years,
 *   basicConstraints CA (path length 0) and keyUsage keyCertSign + cRLSign, both critical, SKI.
 * - `socksmith-ca-key.pem`: its private key, PKCS#8 PEM, opened with mode 0600 so it is never
 *   readable by others, not even while it is written.
 *
 * Contracts:
 * - Concurrent first use (two processes, or two calls in one) yields one CA: each writer prepares
 *   both files under temporary names, then publishes by hard-linking, key first; link fails when
 *   the name exists, so exactly one key wins and the losers read the winner's pair. The
 *   certificate is linked last, so a certificate present implies its key is present; a key
 *   without its certificate is waited for briefly (a winner between its two links).
 * - A file that is corrupt, a key that is not the certificate's, a certificate that is not a CA or
 *   has expired is a `CaError` naming the file. Nothing is ever regenerated silently: a new CA
 *   means every client must be told to trust it again.
 * - The private key is never part of anything printable: it lives in a private field as a
 *   non-extractable WebCrypto key; `toJSON` and `util.inspect` show the paths and fingerprint only.
 */
import { createPrivateKey, type KeyObject, webcrypto, X509Certificate } from "node:crypto";
import { link, mkdir, open, readFile, stat, unlink } from "node:fs/promises";
import { hostname, userInfo } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { inspect } from "node:util";
import { certificatePem, ECDSA_SHA256, type LibCryptoKey, type LibKeyPair, P256, randomSerial, toPem, x509 } from "./x509.js";

export const CA_CERT_FILE = "socksmith-ca.pem";
export const CA_KEY_FILE = "socksmith-ca-key.pem";

const DAY_MS = 24 * 60 * 60 * 1000;
/** Backdated like the leaves, so no leaf starts before its issuer (and clocks a little behind still accept both). */
const CA_BACKDATE_MS = 2 * DAY_MS;
const CA_VALIDITY_MS = 3652 * DAY_MS;
/** How long a key without its certificate is taken for a writer between its two links. */
const PUBLISH_WAIT_MS = 2000;

/** The CA cannot be created or loaded; the message names the file or directory and what to do. */
export class CaError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CaError";
  }
}

export { defaultCaDir } from "./ca-dir.js";

/** A loaded CA: its certificate in several forms and the key that signs leaves (never printed). */
export class CertificateAuthority {
  readonly #signingKey: webcrypto.CryptoKey;
  readonly #parsed: x509.X509Certificate;

  /** @internal use loadOrCreateCa */
  constructor(
    readonly certPath: string,
    readonly keyPath: string,
    readonly certPem: string,
    readonly certificate: X509Certificate,
    parsed: x509.X509Certificate,
    signingKey: webcrypto.CryptoKey,
    /** The certificate's subjectKeyIdentifier (hex), which every leaf names as its authorityKeyIdentifier. */
    readonly keyId: string,
    /** Whether this call created the CA (false: it existed, or a concurrent caller created it). */
    readonly created: boolean,
    /** Problems worth telling the user that do not stop the CA from working (file permissions). */
    readonly warnings: readonly string[],
  ) {
    this.#parsed = parsed;
    this.#signingKey = signingKey;
  }

  /** SHA-256 fingerprint, colon-separated upper-case hex (as Node's X509Certificate prints it). */
  get fingerprint256(): string {
    return this.certificate.fingerprint256;
  }

  get notBefore(): Date {
    return this.#parsed.notBefore;
  }

  get notAfter(): Date {
    return this.#parsed.notAfter;
  }

  /** The subject as encoded in the certificate: leaves use it as their issuer, byte for byte. */
  get subjectName(): x509.Name {
    return this.#parsed.subjectName;
  }

  /** The private key (ECDSA P-256, non-extractable, usage "sign"). */
  get signingKey(): webcrypto.CryptoKey {
    return this.#signingKey;
  }

  toJSON(): { certPath: string; keyPath: string; fingerprint256: string; subject: string; notAfter: string } {
    return {
      certPath: this.certPath,
      keyPath: this.keyPath,
      fingerprint256: this.fingerprint256,
      subject: this.certificate.subject.replace(/\n/g, ", "),
      notAfter: this.notAfter.toISOString(),
    };
  }

  [inspect.custom](): string {
    return `CertificateAuthority { certPath: ${this.certPath}, fingerprint256: ${this.fingerprint256}, key: <hidden> }`;
  }
}

/**
 * The CA in `dir`, created (with the directory) when neither file exists yet. Rejects with
 * `CaError` when the files cannot be read, written or trusted; see the module comment.
 */
export async function loadOrCreateCa(dir: string): Promise<CertificateAuthority> {
  const certPath = join(dir, CA_CERT_FILE);
  const keyPath = join(dir, CA_KEY_FILE);
  // Certificate first: it is published last, so once it is seen its key is there too.
  if ((await readIfExists(certPath)) !== undefined || (await readIfExists(keyPath)) !== undefined) return load(certPath, keyPath, false);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new CaError(`cannot create the CA directory ${dir}: ${reason(err)}`);
  }
  const won = await createAndPublish(dir, certPath, keyPath);
  return load(certPath, keyPath, won);
}

async function createAndPublish(dir: string, certPath: string, keyPath: string): Promise<boolean> {
  const keys = (await webcrypto.subtle.generateKey(P256, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [caCommonName()] }, { O: ["socksmith"] }],
    notBefore: new Date(now - CA_BACKDATE_MS),
    notAfter: new Date(now + CA_VALIDITY_MS),
    signingAlgorithm: ECDSA_SHA256,
    keys: keys as unknown as LibKeyPair,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as unknown as LibCryptoKey),
    ],
  });
  const keyPem = toPem("PRIVATE KEY", await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
  const tag = `${process.pid}.${randomSerial().slice(0, 8)}.tmp`;
  const keyTemp = join(dir, `.${CA_KEY_FILE}.${tag}`);
  const certTemp = join(dir, `.${CA_CERT_FILE}.${tag}`);
  try {
    await writeNew(keyTemp, keyPem, 0o600);
    await writeNew(certTemp, certificatePem(cert), 0o644);
    try {
      await link(keyTemp, keyPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw err;
    }
    await link(certTemp, certPath);
    return true;
  } catch (err) {
    throw new CaError(`cannot write the CA into ${dir}: ${reason(err)}`);
  } finally {
    await Promise.all([unlink(keyTemp).catch(() => {}), unlink(certTemp).catch(() => {})]);
  }
}

/** Creates `path` (which must not exist) with `mode` from the first byte, writes `text` and syncs it. */
async function writeNew(path: string, text: string, mode: number): Promise<void> {
  const handle = await open(path, "wx", mode);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function load(certPath: string, keyPath: string, created: boolean): Promise<CertificateAuthority> {
  let certPem = await readIfExists(certPath);
  const keyPem = await readIfExists(keyPath);
  if (keyPem === undefined) {
    throw new CaError(
      `the CA certificate ${certPath} is there but its key ${keyPath} is not; restore the key, or remove the certificate to create a new CA (clients must then trust the new one)`,
    );
  }
  for (const deadline = Date.now() + PUBLISH_WAIT_MS; certPem === undefined && Date.now() < deadline; ) {
    await sleep(20);
    certPem = await readIfExists(certPath);
  }
  if (certPem === undefined) {
    throw new CaError(`the CA key ${keyPath} is there but its certificate ${certPath} is not; remove the key to create a new CA`);
  }
  const replace = `fix or remove ${certPath} and ${keyPath} (socksmith then creates a new CA, which clients must trust again)`;
  let certificate: X509Certificate;
  let parsed: x509.X509Certificate;
  try {
    certificate = new X509Certificate(certPem);
    parsed = new x509.X509Certificate(certPem);
  } catch (err) {
    throw new CaError(`the CA certificate ${certPath} cannot be read as a PEM certificate (${reason(err)}); ${replace}`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw new CaError(`the CA key ${keyPath} cannot be read as a PEM private key (${reason(err)}); ${replace}`);
  }
  if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
    const kind = key.asymmetricKeyType === "ec" ? `EC ${key.asymmetricKeyDetails?.namedCurve}` : key.asymmetricKeyType;
    throw new CaError(`the CA key ${keyPath} is a ${kind} key; socksmith signs with ECDSA P-256 keys only; ${replace}`);
  }
  if (!certificate.checkPrivateKey(key)) throw new CaError(`the CA key ${keyPath} does not belong to the certificate ${certPath}; ${replace}`);
  if (!certificate.ca) throw new CaError(`${certPath} is not a CA certificate (basicConstraints does not say CA); ${replace}`);
  if (parsed.notAfter.getTime() <= Date.now()) {
    throw new CaError(`the CA certificate ${certPath} expired on ${parsed.notAfter.toISOString()}; ${replace}`);
  }
  const ski = parsed.getExtension(x509.SubjectKeyIdentifierExtension);
  const keyId = ski?.keyId ?? (await x509.SubjectKeyIdentifierExtension.create(parsed.publicKey)).keyId;
  const signingKey = await webcrypto.subtle.importKey("pkcs8", key.export({ type: "pkcs8", format: "der" }), P256, false, ["sign"]);
  const mode = (await stat(keyPath)).mode & 0o777;
  const warnings =
    (mode & 0o077) === 0 ? [] : [`the CA key ${keyPath} is open to other users (mode ${mode.toString(8).padStart(4, "0")}); run: chmod 600 ${keyPath}`];
  return new CertificateAuthority(certPath, keyPath, certPem, certificate, parsed, signingKey, keyId, created, warnings);
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    // ENOTDIR: a part of the path is a file; mkdir then reports it in words.
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw new CaError(`cannot read ${path}: ${reason(err)}`);
  }
}

/** "socksmith CA (user@host)", at most 64 characters (the X.520 upper bound for a common name). */
function caCommonName(): string {
  let user: string;
  try {
    user = userInfo().username;
  } catch {
    // No passwd entry for this uid (containers).
    user = process.env.USER ?? `uid${process.getuid?.() ?? ""}`;
  }
  return `socksmith CA (${`${user}@${hostname()}`.slice(0, 48)})`;
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
