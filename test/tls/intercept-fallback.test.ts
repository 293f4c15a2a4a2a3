/**
 * TLS interception where Node cannot run TLS on the relayed socket's own handle (an undocumented
 * method, checked by nativeTlsHandles): the engine falls back to RawStream wrappers. Same
 * behaviour, slower. This file's worker is switched to the fallback for good.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { once } from "node:events";
import { createServer, type AddressInfo } from "node:net";
import { TLSSocket, connect as tlsConnect } from "node:tls";
import { SocksClient } from "socks";
import { afterAll, beforeAll, expect, it } from "vitest";
import { nativeTlsHandles, simulateNoNativeTls } from "../../src/engine/io/raw-stream.js";
import { loadOrCreateCa, type CertificateAuthority } from "../../src/tls/ca.js";
import { LeafCertificates } from "../../src/tls/certificates.js";
import { TlsInterception } from "../../src/tls/interceptor.js";
import { HOST, fakeLookup, useTestProxies, withTimeout } from "../support/net.js";

let dir: string;
let proxyCa: CertificateAuthority;
let targetCa: CertificateAuthority;

beforeAll(async () => {
  expect(nativeTlsHandles()).toBe(true);
  simulateNoNativeTls();
  dir = mkdtempSync(join(tmpdir(), "socksmith-tls-fallback-"));
  proxyCa = await loadOrCreateCa(join(dir, "proxy"));
  targetCa = await loadOrCreateCa(join(dir, "target"));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const { cleanups, proxy } = useTestProxies();

it("decrypts through RawStream wrappers: the plaintext is relayed both ways, and a rejecting client is recorded", async () => {
  expect(nativeTlsHandles()).toBe(false);
  const context = await new LeafCertificates(targetCa).secureContextFor({ sni: "example.test", target: HOST });
  const server = createServer((raw) => {
    const socket = new TLSSocket(raw, { isServer: true, secureContext: context });
    socket.on("error", () => {});
    socket.on("data", (data: Buffer) => socket.write(data.toString().toUpperCase()));
  });
  server.listen(0, HOST);
  await once(server, "listening");
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const port = (server.address() as AddressInfo).port;
  const interceptor = new TlsInterception({ certificates: new LeafCertificates(proxyCa), upstreamCa: [targetCa.certPem], handshakeTimeoutMs: 5_000 });
  const p = await proxy({ tls: interceptor, lookup: fakeLookup({ "example.test": [HOST] }) });
  const open = async (ca: string) => {
    const { socket } = await SocksClient.createConnection({
      proxy: { host: HOST, port: p.port, type: 5 },
      command: "connect",
      destination: { host: "example.test", port },
      timeout: 5_000,
    });
    const secure = tlsConnect({ socket, servername: "example.test", ca });
    secure.on("error", () => {});
    cleanups.push(() => void secure.destroy());
    await withTimeout(once(secure, "secureConnect"), 5_000, "no handshake");
    return secure;
  };
  const secure = await open(proxyCa.certPem);
  expect(secure.getPeerX509Certificate()?.checkIssued(proxyCa.certificate)).toBe(true);
  secure.write("fallback");
  const [answer] = (await withTimeout(once(secure, "data"), 5_000, "no answer")) as [Buffer];
  expect(answer.toString()).toBe("FALLBACK");
  await expect(open(targetCa.certPem)).rejects.toThrow();
  const deadline = Date.now() + 5_000;
  while (!interceptor.distrusted.has("example.test") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  expect(interceptor.distrusted.has("example.test")).toBe(true);
});
