/**
 * The socksmith CA on disk: created once with private modes, loaded unchanged, one CA however
 * many callers race to create it, and a clear CaError (never a new CA) for damaged files.
 */
import { createPrivateKey, webcrypto, X509Certificate } from "node:crypto";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { CA_CERT_FILE, CA_KEY_FILE, CaError, defaultCaDir, loadOrCreateCa } from "../../src/tls/ca.js";
import { x509 } from "../../src/tls/x509.js";

const root = mkdtempSync(join(tmpdir(), "socksmith-ca-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const freshDir = (): string => join(root, `ca-${++dirs}`, "nested");

const DAY_MS = 24 * 60 * 60 * 1000;

/** The CA key's private scalar in every encoding it could leak in (the PEM's tail is the public key, which the certificate shows too). */
function keySecrets(keyPath: string): string[] {
  const pem = readFileSync(keyPath, "utf8");
  const d = Buffer.from(createPrivateKey(pem).export({ format: "jwk" }).d!, "base64url");
  const body = pem
    .split("\n")
    .filter((line) => line !== "" && !line.startsWith("-----"))
    .join("");
  return [d.toString("hex"), d.toString("base64"), d.toString("base64url"), body.slice(0, 64)];
}

describe("defaultCaDir", () => {
  it("is $XDG_CONFIG_HOME/socksmith when XDG_CONFIG_HOME is set, else ~/.socksmith", () => {
    expect(defaultCaDir({ XDG_CONFIG_HOME: "/cfg" }, "/home/u")).toBe("/cfg/socksmith");
    expect(defaultCaDir({}, "/home/u")).toBe("/home/u/.socksmith");
    expect(defaultCaDir({ XDG_CONFIG_HOME: "" }, "/home/u")).toBe("/home/u/.socksmith");
    // The XDG spec: a relative path is invalid and ignored.
    expect(defaultCaDir({ XDG_CONFIG_HOME: "relative/cfg" }, "/home/u")).toBe("/home/u/.socksmith");
  });
});

describe("loadOrCreateCa", () => {
  it("creates the directory 0700, the key 0600 and a P-256 / SHA-256 CA certificate valid for 10 years", async () => {
    const dir = freshDir();
    const before = Date.now();
    const ca = await loadOrCreateCa(dir);
    expect(ca.created).toBe(true);
    expect(ca.warnings).toEqual([]);
    expect(ca.certPath).toBe(join(dir, CA_CERT_FILE));
    expect(ca.keyPath).toBe(join(dir, CA_KEY_FILE));
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(ca.keyPath).mode & 0o777).toBe(0o600);
    expect(statSync(ca.certPath).mode & 0o022).toBe(0);
    expect(readFileSync(ca.certPath, "utf8")).toBe(ca.certPem);
    expect(readdirSync(dir).sort()).toEqual([CA_KEY_FILE, CA_CERT_FILE].sort());

    const cert = new X509Certificate(readFileSync(ca.certPath));
    expect(cert.ca).toBe(true);
    expect(cert.fingerprint256).toBe(ca.fingerprint256);
    expect(cert.checkIssued(cert)).toBe(true);
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    expect(cert.subject).toMatch(/^CN=socksmith CA \(.+@.+\)\nO=socksmith$/);

    const parsed = new x509.X509Certificate(ca.certPem);
    expect(parsed.signatureAlgorithm).toMatchObject({ name: "ECDSA", hash: { name: "SHA-256" } });
    const basic = parsed.getExtension(x509.BasicConstraintsExtension);
    expect(basic).toMatchObject({ ca: true, critical: true });
    const usage = parsed.getExtension(x509.KeyUsagesExtension);
    expect(usage?.critical).toBe(true);
    expect(usage?.usages).toBe(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
    const ski = parsed.getExtension(x509.SubjectKeyIdentifierExtension);
    expect(ski?.keyId).toBe(ca.keyId);
    expect(ca.keyId).toMatch(/^[0-9a-f]{40}$/);
    const years = (parsed.notAfter.getTime() - before) / (365.25 * DAY_MS);
    expect(years).toBeGreaterThan(9.99);
    expect(years).toBeLessThan(10.01);
    expect(parsed.notBefore.getTime()).toBeLessThan(before);
  });

  it("loads the same CA again: same fingerprint and key, nothing rewritten", async () => {
    const dir = freshDir();
    const first = await loadOrCreateCa(dir);
    const certBefore = readFileSync(first.certPath, "utf8");
    const keyBefore = readFileSync(first.keyPath, "utf8");
    const again = await loadOrCreateCa(dir);
    expect(again.created).toBe(false);
    expect(again.fingerprint256).toBe(first.fingerprint256);
    expect(again.keyId).toBe(first.keyId);
    expect(readFileSync(first.certPath, "utf8")).toBe(certBefore);
    expect(readFileSync(first.keyPath, "utf8")).toBe(keyBefore);
    // The loaded key is the certificate's: a signature made with it verifies with the certificate's public key.
    const data = Buffer.from("socksmith");
    const signature = await webcrypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, again.signingKey, data);
    const publicKey = await webcrypto.subtle.importKey(
      "spki",
      again.certificate.publicKey.export({ type: "spki", format: "der" }),
      { name: "ECDSA", namedCurve: "P-256" },
      false,
      ["verify"],
    );
    expect(await webcrypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, publicKey, signature, data)).toBe(true);
    expect(again.signingKey.extractable).toBe(false);
  });

  it("gives every concurrent first caller the same CA, created by exactly one of them, and leaves no temporary files", async () => {
    const dir = freshDir();
    const all = await Promise.all(Array.from({ length: 6 }, () => loadOrCreateCa(dir)));
    expect(new Set(all.map((ca) => ca.fingerprint256)).size).toBe(1);
    expect(all.filter((ca) => ca.created)).toHaveLength(1);
    expect(readdirSync(dir).sort()).toEqual([CA_KEY_FILE, CA_CERT_FILE].sort());
    expect(new X509Certificate(readFileSync(join(dir, CA_CERT_FILE))).fingerprint256).toBe(all[0]!.fingerprint256);
  });

  it("never prints the key: util.inspect and JSON show paths and the fingerprint only", async () => {
    const ca = await loadOrCreateCa(freshDir());
    const secrets = keySecrets(ca.keyPath);
    const shown = [inspect(ca), inspect(ca, { customInspect: false, showHidden: true, depth: 10 }), JSON.stringify(ca), String(ca), JSON.stringify({ ...ca })];
    for (const text of shown) {
      for (const secret of secrets) expect(text.toLowerCase()).not.toContain(secret.toLowerCase());
      expect(text).not.toContain("PRIVATE KEY");
    }
    expect(inspect(ca)).toContain(ca.fingerprint256);
    expect(JSON.parse(JSON.stringify(ca))).toEqual({
      certPath: ca.certPath,
      keyPath: ca.keyPath,
      fingerprint256: ca.fingerprint256,
      subject: expect.stringMatching(/^CN=socksmith CA/),
      notAfter: ca.notAfter.toISOString(),
    });
  });

  it("warns when the key file is open to other users, naming the file and the fix", async () => {
    const dir = freshDir();
    const ca = await loadOrCreateCa(dir);
    chmodSync(ca.keyPath, 0o644);
    const again = await loadOrCreateCa(dir);
    expect(again.warnings).toEqual([`the CA key ${ca.keyPath} is open to other users (mode 0644); run: chmod 600 ${ca.keyPath}`]);
    expect(again.fingerprint256).toBe(ca.fingerprint256);
  });
});

describe("loadOrCreateCa with damaged files: a CaError naming the file, and the files left as they were", () => {
  async function damaged(damage: (certPath: string, keyPath: string) => void, expected: RegExp): Promise<void> {
    const dir = freshDir();
    const ca = await loadOrCreateCa(dir);
    damage(ca.certPath, ca.keyPath);
    const before = readdirSync(dir)
      .sort()
      .map((f) => [f, readFileSync(join(dir, f), "utf8")]);
    const error = await loadOrCreateCa(dir).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(CaError);
    expect((error as CaError).message).toMatch(expected);
    const after = readdirSync(dir)
      .sort()
      .map((f) => [f, readFileSync(join(dir, f), "utf8")]);
    expect(after).toEqual(before);
  }

  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

  it("a certificate that is not PEM", async () => {
    await damaged((certPath) => writeFileSync(certPath, "not a certificate\n"), /^the CA certificate .*socksmith-ca\.pem cannot be read as a PEM certificate/);
  });

  it("a truncated certificate", async () => {
    await damaged((certPath) => {
      const pem = readFileSync(certPath, "utf8");
      writeFileSync(certPath, `${pem.slice(0, 200)}\n-----END CERTIFICATE-----\n`);
    }, /^the CA certificate .*socksmith-ca\.pem cannot be read as a PEM certificate/);
  });

  it("a key that is not PEM", async () => {
    await damaged(
      (_c, keyPath) => writeFileSync(keyPath, "garbage\n", { mode: 0o600 }),
      /^the CA key .*socksmith-ca-key\.pem cannot be read as a PEM private key/,
    );
  });

  it("a key that belongs to another CA", async () => {
    const other = await loadOrCreateCa(freshDir());
    const otherKey = readFileSync(other.keyPath);
    await damaged(
      (_c, keyPath) => writeFileSync(keyPath, otherKey),
      /^the CA key .*socksmith-ca-key\.pem does not belong to the certificate .*socksmith-ca\.pem/,
    );
  });

  it("a certificate whose key is missing", async () => {
    const dir = freshDir();
    const ca = await loadOrCreateCa(dir);
    rmSync(ca.keyPath);
    await expect(loadOrCreateCa(dir)).rejects.toThrow(new RegExp(`^the CA certificate ${esc(ca.certPath)} is there but its key ${esc(ca.keyPath)} is not`));
    expect(readdirSync(dir)).toEqual([CA_CERT_FILE]);
  });

  it("a key whose certificate is missing (after waiting for a writer that might be between its two links)", async () => {
    const dir = freshDir();
    const ca = await loadOrCreateCa(dir);
    rmSync(ca.certPath);
    await expect(loadOrCreateCa(dir)).rejects.toThrow(new RegExp(`^the CA key ${esc(ca.keyPath)} is there but its certificate ${esc(ca.certPath)} is not`));
    expect(readdirSync(dir)).toEqual([CA_KEY_FILE]);
  });

  it("a directory that cannot be created", async () => {
    const file = join(root, "a-file");
    writeFileSync(file, "");
    await expect(loadOrCreateCa(join(file, "ca"))).rejects.toThrow(/^cannot create the CA directory .*a-file\/ca: /);
  });
});
