/**
 * Leaf certificates from the socksmith CA: their names, extensions and validity checked with
 * Node's own X509Certificate, real TLS handshakes over loopback (Node's client and curl) that
 * succeed with the CA and fail without it, and the cache (one generation per name set).
 */
import { execFile } from "node:child_process";
import { webcrypto, X509Certificate } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { type AddressInfo, createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ConnectionOptions, checkServerIdentity, connect, TLSSocket } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CertificateAuthority, loadOrCreateCa } from "../../src/tls/ca.js";
import { LeafCertificates, LeafNameError, leafNames } from "../../src/tls/certificates.js";
import { x509 } from "../../src/tls/x509.js";
import { withTimeout } from "../support/net.js";

const DAY_MS = 24 * 60 * 60 * 1000;
const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";

const root = mkdtempSync(join(tmpdir(), "socksmith-leaves-"));
let ca: CertificateAuthority;
let otherCa: CertificateAuthority;
beforeAll(async () => {
  ca = await loadOrCreateCa(join(root, "ca"));
  otherCa = await loadOrCreateCa(join(root, "other-ca"));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** An upstream server certificate as a public CA would issue it: O in the subject, DNS and IP SANs. */
async function upstreamCertificate(): Promise<X509Certificate> {
  const alg = { name: "ECDSA", namedCurve: "P-256" };
  const keys = (await webcrypto.subtle.generateKey(alg, false, ["sign", "verify"])) as never;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: [{ CN: ["upstream.example"] }, { O: ["Example Org, Inc."] }],
    keys,
    signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
    extensions: [
      new x509.SubjectAlternativeNameExtension([
        { type: "dns", value: "upstream.example" },
        { type: "dns", value: "*.upstream.example" },
        { type: "dns", value: "WWW.Upstream.Example" },
        { type: "ip", value: "10.1.2.3" },
        { type: "ip", value: "2001:db8::7" },
        { type: "email", value: "admin@upstream.example" },
      ]),
    ],
  });
  return new X509Certificate(Buffer.from(cert.rawData));
}

function extensionOf<T extends x509.Extension>(pem: string, type: new (raw: ArrayBuffer) => T): T | null {
  return new x509.X509Certificate(pem).getExtension(type);
}

/** The checks every leaf must pass, whatever its names. */
function expectValidLeaf(leaf: X509Certificate, pem: string): void {
  expect(leaf.checkIssued(ca.certificate)).toBe(true);
  expect(leaf.verify(ca.certificate.publicKey)).toBe(true);
  expect(leaf.verify(otherCa.certificate.publicKey)).toBe(false);
  expect(leaf.ca).toBe(false);
  expect(leaf.keyUsage).toEqual([SERVER_AUTH]);
  expect(leaf.publicKey.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
  expect(leaf.issuer).toBe(ca.certificate.subject);
  const now = Date.now();
  const from = Date.parse(leaf.validFrom);
  const to = Date.parse(leaf.validTo);
  expect(to - from).toBeLessThanOrEqual(200 * DAY_MS);
  expect(from).toBeLessThanOrEqual(now - DAY_MS);
  expect(to).toBeGreaterThan(now + 180 * DAY_MS);
  expect(/^[0-7]/.test(leaf.serialNumber)).toBe(true);

  const parsed = new x509.X509Certificate(pem);
  expect(parsed.signatureAlgorithm).toMatchObject({ name: "ECDSA", hash: { name: "SHA-256" } });
  expect(parsed.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId).toBe(ca.keyId);
  expect(parsed.getExtension(x509.SubjectKeyIdentifierExtension)).toBeNull();
  expect(parsed.getExtension(x509.BasicConstraintsExtension)).toMatchObject({ ca: false, critical: true });
  expect(parsed.getExtension(x509.KeyUsagesExtension)).toMatchObject({ usages: x509.KeyUsageFlags.digitalSignature, critical: true });
}

describe("leafNames", () => {
  it("puts the SNI first, then the upstream's DNS and IP SANs, then the target; IDNA, lower case, no duplicates", async () => {
    const upstream = await upstreamCertificate();
    expect(leafNames({ sni: "API.Upstream.Example.", target: "10.1.2.3", upstream })).toEqual({
      dns: ["api.upstream.example", "upstream.example", "*.upstream.example", "www.upstream.example"],
      ip: ["10.1.2.3", "2001:db8::7"],
      organization: "Example Org, Inc.",
    });
  });

  it("a name target is a DNS name (punycode for IDN), an address target an IP (brackets and zones dropped)", () => {
    expect(leafNames({ target: "Bücher.example" })).toEqual({ dns: ["xn--bcher-kva.example"], ip: [] });
    expect(leafNames({ target: "[2001:DB8:0:0::1]" })).toEqual({ dns: [], ip: ["2001:db8::1"] });
    expect(leafNames({ target: "fe80::1%eth0" })).toEqual({ dns: [], ip: ["fe80::1"] });
    expect(leafNames({ sni: "example.test", target: "example.test" })).toEqual({ dns: ["example.test"], ip: [] });
    expect(leafNames({ sni: "not a name", target: "127.0.0.1" })).toEqual({ dns: [], ip: ["127.0.0.1"] });
  });
});

describe("LeafCertificates: the certificates", () => {
  it("a leaf for a DNS name: SAN and CN the name, signed by the CA, serverAuth, AKI = the CA's SKI, no SKI, under 200 days", async () => {
    const leaves = new LeafCertificates(ca);
    const leaf = await leaves.leafFor({ sni: "example.test", target: "example.test" });
    expectValidLeaf(leaf.certificate, leaf.certPem);
    expect(leaf.certificate.subjectAltName).toBe("DNS:example.test");
    expect(leaf.certificate.subject).toBe("CN=example.test");
    expect(leaf.certificate.checkHost("example.test")).toBe("example.test");
    expect(await leaves.leafPemFor({ sni: "example.test", target: "example.test" })).toBe(leaf.certPem);
  });

  it("a leaf for an IP target without SNI: an IP SAN (v4 and v6)", async () => {
    const leaves = new LeafCertificates(ca);
    const v4 = await leaves.leafFor({ target: "127.0.0.1" });
    expectValidLeaf(v4.certificate, v4.certPem);
    expect(v4.certificate.subjectAltName).toBe("IP Address:127.0.0.1");
    expect(v4.certificate.checkIP("127.0.0.1")).toBe("127.0.0.1");
    const v6 = await leaves.leafFor({ target: "::1" });
    expect(v6.certificate.checkIP("::1")).toBe("::1");
    expect(v6.certificate.subjectAltName).not.toContain("DNS:");
  });

  it("a leaf mirroring an upstream certificate: its SANs merged with the SNI and the target, its O copied", async () => {
    const leaves = new LeafCertificates(ca);
    const upstream = await upstreamCertificate();
    const leaf = await leaves.leafFor({ sni: "api.upstream.example", target: "10.9.9.9", upstream });
    expectValidLeaf(leaf.certificate, leaf.certPem);
    const sans = extensionOf(leaf.certPem, x509.SubjectAlternativeNameExtension)!.names.items.map((n) => `${n.type}:${n.value}`);
    expect(sans).toEqual([
      "dns:api.upstream.example",
      "dns:upstream.example",
      "dns:*.upstream.example",
      "dns:www.upstream.example",
      "ip:10.1.2.3",
      "ip:2001:db8::7",
      "ip:10.9.9.9",
    ]);
    expect(new x509.X509Certificate(leaf.certPem).subjectName.getField("O")).toEqual(["Example Org, Inc."]);
    expect(new x509.X509Certificate(leaf.certPem).subjectName.getField("CN")).toEqual(["api.upstream.example"]);
    expect(leaf.certificate.checkHost("anything.upstream.example")).toBe("*.upstream.example");
    expect(leaf.certificate.checkIP("10.9.9.9")).toBe("10.9.9.9");
  });

  it("no CN for a name of 64 characters or more (the address is used when there is one)", async () => {
    const long = `${"a".repeat(60)}.example`;
    const leaf = await new LeafCertificates(ca).leafFor({ sni: long, target: "192.0.2.1" });
    expect(leaf.certificate.subject).toBe("CN=192.0.2.1");
    expect(leaf.certificate.checkHost(long)).toBe(long);
  });

  it("one leaf key per instance: every leaf carries the same public key", async () => {
    const leaves = new LeafCertificates(ca);
    const a = await leaves.leafFor({ target: "a.example" });
    const b = await leaves.leafFor({ target: "b.example" });
    expect(a.certificate.publicKey.equals(b.certificate.publicKey)).toBe(true);
    expect(a.certificate.serialNumber).not.toBe(b.certificate.serialNumber);
  });

  it("a request without any usable name is refused with LeafNameError", async () => {
    await expect(new LeafCertificates(ca).leafFor({ target: "not a host" })).rejects.toBeInstanceOf(LeafNameError);
  });
});

describe("LeafCertificates: the cache", () => {
  it("a second request for the same names generates nothing and returns the same SecureContext", async () => {
    const leaves = new LeafCertificates(ca);
    const first = await leaves.secureContextFor({ sni: "cache.example", target: "cache.example" });
    expect(leaves.generated).toBe(1);
    const second = await leaves.secureContextFor({ sni: "cache.example", target: "cache.example" });
    expect(second).toBe(first);
    expect(leaves.generated).toBe(1);
    // The same set of names in another order is the same entry.
    const upstream = await upstreamCertificate();
    const x = await leaves.secureContextFor({ sni: "upstream.example", target: "10.1.2.3", upstream });
    const y = await leaves.secureContextFor({ sni: "www.upstream.example", target: "2001:db8::7", upstream });
    expect(y).toBe(x);
    expect(leaves.generated).toBe(2);
  });

  it("concurrent requests for the same names share one generation", async () => {
    const leaves = new LeafCertificates(ca);
    const contexts = await Promise.all(Array.from({ length: 8 }, () => leaves.secureContextFor({ target: "together.example" })));
    expect(new Set(contexts).size).toBe(1);
    expect(leaves.generated).toBe(1);
  });

  it("keeps at most `capacity` name sets, dropping the least recently used", async () => {
    const leaves = new LeafCertificates(ca, { capacity: 2 });
    const a = await leaves.secureContextFor({ target: "a.example" });
    await leaves.secureContextFor({ target: "b.example" });
    expect(await leaves.secureContextFor({ target: "a.example" })).toBe(a); // a is now the most recent
    await leaves.secureContextFor({ target: "c.example" }); // drops b
    expect(leaves.size).toBe(2);
    expect(leaves.generated).toBe(3);
    expect(await leaves.secureContextFor({ target: "a.example" })).toBe(a);
    expect(leaves.generated).toBe(3);
    await leaves.secureContextFor({ target: "b.example" });
    expect(leaves.generated).toBe(4);
  });
});

describe("LeafCertificates: validity over time", () => {
  it("makes a cached leaf again once it is within a day of its end", async () => {
    let now = Date.now();
    const leaves = new LeafCertificates(ca, { now: () => now });
    const first = await leaves.leafFor({ target: "renew.example" });
    expect(first.notAfter.getTime()).toBe(now + 197 * DAY_MS);
    now += 195 * DAY_MS;
    expect(await leaves.leafFor({ target: "renew.example" })).toBe(first);
    now += 1.5 * DAY_MS;
    const renewed = await leaves.leafFor({ target: "renew.example" });
    expect(renewed).not.toBe(first);
    expect(leaves.generated).toBe(2);
    expect(Date.parse(renewed.certificate.validTo)).toBeGreaterThan(now + 190 * DAY_MS);
  });

  it("never outlives the CA", async () => {
    const now = ca.notAfter.getTime() - 10 * DAY_MS;
    const leaf = await new LeafCertificates(ca, { now: () => now }).leafFor({ target: "late.example" });
    expect(leaf.notAfter.getTime()).toBe(ca.notAfter.getTime());
    expect(Date.parse(leaf.certificate.validTo)).toBeLessThanOrEqual(ca.notAfter.getTime());
  });
});

describe("LeafCertificates over real TLS on loopback", () => {
  let leaves: LeafCertificates;
  beforeAll(() => {
    leaves = new LeafCertificates(ca);
  });

  /**
   * A TLS server on 127.0.0.1:0 built as the interceptor builds its client side: a plain TCP
   * server whose sockets become server-side TLSSockets with the context for the SNI (SNICallback)
   * or, when the client sent none, the context for `target`. `serve` gets each plaintext socket.
   */
  async function tlsServer(target: string, serve: (socket: TLSSocket) => void) {
    const fallback = await leaves.secureContextFor({ target });
    const server = createNetServer((raw) => {
      const socket = new TLSSocket(raw, {
        isServer: true,
        secureContext: fallback,
        SNICallback: (servername, done) => void leaves.secureContextFor({ sni: servername, target: servername }).then((ctx) => done(null, ctx), done),
      });
      socket.on("error", () => socket.destroy());
      socket.on("secure", () => serve(socket));
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    return { server, port: (server.address() as AddressInfo).port };
  }

  const hello = (target: string) => (socket: TLSSocket) => socket.end(`hello ${(socket as TLSSocket & { servername?: string | false }).servername || target}`);

  /** Connects, reads everything; resolves with the text or rejects with the TLS error. */
  function fetchText(options: ConnectionOptions): Promise<{ text: string; authorized: boolean; protocol: string | null }> {
    return withTimeout(
      new Promise((resolve, reject) => {
        const socket = connect(options);
        let text = "";
        socket.on("error", reject);
        socket.on("data", (d: Buffer) => (text += d.toString()));
        socket.on("end", () => resolve({ text, authorized: socket.authorized, protocol: socket.getProtocol() }));
      }),
      5000,
      "TLS exchange did not finish",
    );
  }

  it("a client trusting the CA accepts the leaf for its SNI; a client trusting another CA refuses it", async () => {
    const { server, port } = await tlsServer("127.0.0.1", hello("127.0.0.1"));
    try {
      const ok = await fetchText({ host: "127.0.0.1", port, servername: "example.test", ca: ca.certPem });
      expect(ok).toEqual({ text: "hello example.test", authorized: true, protocol: "TLSv1.3" });
      const tls12 = await fetchText({ host: "127.0.0.1", port, servername: "example.test", ca: ca.certPem, maxVersion: "TLSv1.2" });
      expect(tls12).toEqual({ text: "hello example.test", authorized: true, protocol: "TLSv1.2" });
      await expect(fetchText({ host: "127.0.0.1", port, servername: "example.test", ca: otherCa.certPem })).rejects.toMatchObject({
        code: "SELF_SIGNED_CERT_IN_CHAIN",
      });
      // Trusting the CA does not make the leaf good for another name.
      await expect(
        fetchText({
          host: "127.0.0.1",
          port,
          servername: "example.test",
          ca: ca.certPem,
          checkServerIdentity: (_h, cert) => checkServerIdentity("other.test", cert),
        }),
      ).rejects.toMatchObject({ code: "ERR_TLS_CERT_ALTNAME_INVALID" });
    } finally {
      server.close();
    }
  });

  it("a client connecting to an IP address without SNI accepts the leaf's IP SAN", async () => {
    const { server, port } = await tlsServer("127.0.0.1", hello("127.0.0.1"));
    try {
      // Node sends no SNI for an IP host and checks the certificate against the IP.
      const ok = await fetchText({ host: "127.0.0.1", port, ca: ca.certPem });
      expect(ok).toEqual({ text: "hello 127.0.0.1", authorized: true, protocol: "TLSv1.3" });
    } finally {
      server.close();
    }
  });

  it("curl --cacert accepts an HTTPS server using the leaf, and refuses it with another CA", async () => {
    const caFile = join(root, "curl-ca.pem");
    const otherFile = join(root, "curl-other.pem");
    writeFileSync(caFile, ca.certPem);
    writeFileSync(otherFile, otherCa.certPem);
    const https = createHttpServer((req, res) => res.end(`https ok ${req.url}`));
    const { server, port } = await tlsServer("127.0.0.1", (socket) => https.emit("connection", socket));
    const curl = (cacert: string) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
        execFile(
          "curl",
          ["-sS", "--max-time", "5", "--cacert", cacert, "--resolve", `example.test:${port}:127.0.0.1`, `https://example.test:${port}/x`],
          (err, stdout, stderr) => resolve({ code: err === null ? 0 : Number((err as { code?: unknown }).code ?? 1), stdout, stderr }),
        ),
      );
    try {
      expect(await curl(caFile)).toMatchObject({ code: 0, stdout: "https ok /x" });
      // 60: the peer certificate cannot be authenticated with the given CA certificates.
      expect(await curl(otherFile)).toMatchObject({ code: 60, stdout: "" });
    } finally {
      https.closeAllConnections();
      server.close();
    }
  });
});
