/**
 * `socksmith ca` through the built CLI: creates the CA once (also when two processes race),
 * prints where it is, its fingerprint and how to trust it, `--pem` prints the certificate alone,
 * a damaged file is an error naming it, and the key never reaches stdout or stderr.
 */
import { execFile } from "node:child_process";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CLI } from "../support/cli.js";

const root = mkdtempSync(join(tmpdir(), "socksmith-ca-cli-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const freshDir = (): string => join(root, `ca-${++dirs}`);

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

function ca(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, "ca", ...args], { timeout: 20_000, env }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** The key's private scalar in every encoding it could leak in (the PEM's tail is the public key, which the certificate shows too). */
function keySecrets(dir: string): string[] {
  const pem = readFileSync(join(dir, "socksmith-ca-key.pem"), "utf8");
  const d = Buffer.from(createPrivateKey(pem).export({ format: "jwk" }).d!, "base64url");
  const body = pem
    .split("\n")
    .filter((line) => line !== "" && !line.startsWith("-----"))
    .join("");
  // The PEM's first line holds the PKCS#8 header and most of the scalar.
  return [d.toString("hex"), d.toString("base64"), d.toString("base64url"), body.slice(0, 64)];
}

function expectNoKey(ran: Ran, dir: string): void {
  for (const text of [ran.stdout, ran.stderr]) {
    expect(text).not.toContain("PRIVATE KEY");
    for (const secret of keySecrets(dir)) expect(text.toLowerCase()).not.toContain(secret.toLowerCase());
  }
}

describe("socksmith ca", () => {
  it("creates the CA on first use and prints its path, fingerprint, validity and how to trust it; the key never", async () => {
    const dir = freshDir();
    const first = await ca(["--ca-dir", dir]);
    expect(first.code).toBe(0);
    const certPath = join(dir, "socksmith-ca.pem");
    const keyPath = join(dir, "socksmith-ca-key.pem");
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(keyPath).mode & 0o777).toBe(0o600);
    const cert = new X509Certificate(readFileSync(certPath));
    expect(first.stderr).toBe(`created a new socksmith CA in ${dir}\n`);
    const lines = first.stdout.split("\n");
    expect(lines).toContain(`certificate  ${certPath}`);
    expect(lines).toContain(`SHA-256      ${cert.fingerprint256}`);
    expect(first.stdout).toMatch(/^valid {8}\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC to \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/m);
    expect(first.stdout).toContain(`curl --cacert ${certPath} `);
    expect(first.stdout).toContain(`NODE_EXTRA_CA_CERTS=${certPath} `);
    expect(first.stdout).toContain(`REQUESTS_CA_BUNDLE=${certPath} `);
    expect(first.stdout).toContain(`SSL_CERT_FILE=${certPath} `);
    expect(first.stdout).toContain(`certutil -d sql:$HOME/.pki/nssdb -A -t "C,," -n socksmith -i ${certPath}`);
    expect(first.stdout).toContain(`sudo cp ${certPath} /usr/local/share/ca-certificates/socksmith.crt && sudo update-ca-certificates`);
    expect(first.stdout).toContain(`Keep the key ${keyPath} private`);
    expectNoKey(first, dir);

    const again = await ca(["--ca-dir", dir]);
    expect(again).toMatchObject({ code: 0, stderr: "" });
    expect(again.stdout).toBe(first.stdout);
    expectNoKey(again, dir);
  });

  it("--pem prints exactly the certificate file", async () => {
    const dir = freshDir();
    const ran = await ca(["--ca-dir", dir, "--pem"]);
    expect(ran.code).toBe(0);
    expect(ran.stdout).toBe(readFileSync(join(dir, "socksmith-ca.pem"), "utf8"));
    expect(ran.stdout).toMatch(/^-----BEGIN CERTIFICATE-----\n[\s\S]+\n-----END CERTIFICATE-----\n$/);
    expectNoKey(ran, dir);
  });

  it("two processes creating the CA at once end up with one CA", async () => {
    const dir = freshDir();
    const [a, b] = await Promise.all([ca(["--ca-dir", dir, "--pem"]), ca(["--ca-dir", dir, "--pem"])]);
    expect(a!.code).toBe(0);
    expect(b!.code).toBe(0);
    expect(a!.stdout).toBe(b!.stdout);
    expect(a!.stdout).toBe(readFileSync(join(dir, "socksmith-ca.pem"), "utf8"));
  });

  it("uses $XDG_CONFIG_HOME/socksmith without --ca-dir", async () => {
    const config = freshDir();
    const ran = await ca(["--pem"], { ...process.env, XDG_CONFIG_HOME: config });
    expect(ran.code).toBe(0);
    expect(ran.stdout).toBe(readFileSync(join(config, "socksmith", "socksmith-ca.pem"), "utf8"));
  });

  it("quotes a path with spaces in the commands it prints", async () => {
    const dir = join(freshDir(), "my ca");
    const ran = await ca(["--ca-dir", dir]);
    expect(ran.code).toBe(0);
    expect(ran.stdout).toContain(`curl --cacert '${join(dir, "socksmith-ca.pem")}' `);
  });

  it("a damaged certificate is an error (exit 1) naming the file, and nothing is regenerated", async () => {
    const dir = freshDir();
    expect((await ca(["--ca-dir", dir])).code).toBe(0);
    const certPath = join(dir, "socksmith-ca.pem");
    writeFileSync(certPath, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    const ran = await ca(["--ca-dir", dir]);
    expect(ran.code).toBe(1);
    expect(ran.stdout).toBe("");
    expect(ran.stderr).toMatch(new RegExp(`^socksmith: the CA certificate ${certPath} cannot be read as a PEM certificate .*\\n$`));
    expect(readFileSync(certPath, "utf8")).toBe("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    expectNoKey(ran, dir);
  });
});
