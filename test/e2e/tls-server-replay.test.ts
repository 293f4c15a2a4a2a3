/**
 * Server replay over TLS, end to end with the built CLI and curl: HTTPS sessions recorded
 * through `run --tls` are answered later by `run --tls --server-replay` with the target gone, over
 * TLS with a leaf from the socksmith CA, in the protocol the recording used (h2 stays h2); and
 * exported as pcapng, Wireshark reads the decrypted HTTP.
 */
import { once } from "node:events";
import { createSecureServer, type Http2SecureServer } from "node:http2";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { writeFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { loadOrCreateCa } from "../../src/tls/ca.js";
import { LeafCertificates } from "../../src/tls/certificates.js";
import { runProxy, runToEnd, useCliFixture } from "../support/cli.js";

const { dir, children } = useCliFixture("tls-replay");
const caDir = join(dir, "ca");
const targetCaFile = join(dir, "target-ca.pem");
let caCert: string;

/** An HTTPS server for localhost (h2 and HTTP/1.1) whose certificate comes from a test CA; answers with the path and protocol. */
async function httpsTarget(): Promise<{ server: Http2SecureServer; port: number }> {
  const targetCa = await loadOrCreateCa(join(dir, "target-ca"));
  writeFileSync(targetCaFile, targetCa.certPem);
  const leaf = await new LeafCertificates(targetCa).leafFor({ target: "localhost" });
  const server = createSecureServer({ allowHTTP1: true, SNICallback: (_name, callback) => callback(null, leaf.context) }, (req, res) => {
    res.end(`recorded ${req.url} over HTTP/${req.httpVersion}\n`);
  });
  // Without SNI there is no context: curl always sends SNI for localhost.
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { server, port: (server.address() as AddressInfo).port };
}

async function curl(proxyPort: number, url: string, ...extra: string[]) {
  return runToEnd("curl", [
    "-sS",
    "--max-time",
    "5",
    "--cacert",
    caCert,
    "--socks5-hostname",
    `127.0.0.1:${proxyPort}`,
    "-w",
    " %{http_version}",
    ...extra,
    url,
  ]);
}

describe("server replay over TLS", () => {
  let port = 0;
  beforeAll(async () => {
    const target = await httpsTarget();
    port = target.port;
    // Record: one HTTP/1.1 and one h2 session through run --tls.
    const recorder = await runProxy(["--tls", "--ca-dir", caDir, "--upstream-ca", targetCaFile, "-w", "rec.db"], dir, children);
    caCert = join(caDir, "socksmith-ca.pem");
    const h1 = await curl(recorder.port, `https://localhost:${port}/one`, "--http1.1");
    const h2 = await curl(recorder.port, `https://localhost:${port}/two`, "--http2");
    await recorder.stop();
    target.server.close();
    expect(h1.stdout).toBe("recorded /one over HTTP/1.1\n 1.1");
    expect(h2.stdout).toBe("recorded /two over HTTP/2.0\n 2");
  }, 30_000);

  it("answers each recording over TLS in its own protocol, with the target gone", async () => {
    const mock = await runProxy(["--tls", "--ca-dir", caDir, "--server-replay", "rec.db", "--no-capture"], dir, children);
    // A client that offers only HTTP/1.1 gets the HTTP/1.1 recording.
    const h1 = await curl(mock.port, `https://localhost:${port}/one`, "--http1.1");
    expect(h1.stderr).toBe("");
    expect(h1.stdout).toBe("recorded /one over HTTP/1.1\n 1.1");
    // curl offers h2 first and /two was recorded over h2: the mock answers as h2.
    const h2 = await curl(mock.port, `https://localhost:${port}/two`, "--http2");
    expect(h2.stdout).toBe("recorded /two over HTTP/2.0\n 2");
    await mock.stop();
    // Only the HTTP/1.1 recording answers: a client offering h2 first still gets HTTP/1.1.
    const h1Only = await runProxy(["--tls", "--ca-dir", caDir, "--server-replay", "rec.db", "--replay-filter", "alpn:http/1.1", "--no-capture"], dir, children);
    const offered = await curl(h1Only.port, `https://localhost:${port}/one`, "--http2");
    expect(offered.stdout).toBe("recorded /one over HTTP/1.1\n 1.1");
    await h1Only.stop();
  }, 30_000);

  it("a client that does not trust the CA gets no answer, and the session says why", async () => {
    const mock = await runProxy(["--tls", "--ca-dir", caDir, "--server-replay", "rec.db", "--replay-reuse", "-w", "mock.db"], dir, children);
    const untrusting = await runToEnd("curl", ["-sS", "--max-time", "5", "--socks5-hostname", `127.0.0.1:${mock.port}`, `https://localhost:${port}/one`]);
    expect(untrusting.code).toBe(60);
    await mock.stop();
    const shown = await runToEnd(process.execPath, [join(import.meta.dirname, "../../dist/cli.js"), "show", "1", join(dir, "mock.db")]);
    expect(shown.stdout).toContain("does not trust the socksmith CA for localhost");
  }, 30_000);

  it("export --format pcapng writes the decrypted stream: tshark decodes the HTTP/1.1 request", async () => {
    const out = join(dir, "rec.pcapng");
    const exported = await runToEnd(process.execPath, [
      join(import.meta.dirname, "../../dist/cli.js"),
      "export",
      join(dir, "rec.db"),
      "--format",
      "pcapng",
      "-o",
      out,
    ]);
    expect(exported.code).toBe(0);
    const shark = await runToEnd("tshark", ["-r", out, "-d", `tcp.port==${port},http`, "-Y", "http.request", "-T", "fields", "-e", "http.request.uri"]);
    expect(shark.code).toBe(0);
    expect(shark.stdout.split("\n").filter(Boolean)).toEqual(["/one"]);
  }, 30_000);
});
