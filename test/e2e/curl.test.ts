/**
 * curl, a real client, through the proxy in every SOCKS mode, against an HTTP server on
 * loopback. curl runs as a child process (async), so the in-process proxy keeps serving.
 */
import { execFile } from "node:child_process";
import { createServer, type Server } from "node:http";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Credentials } from "../../src/engine/index.js";
import { startProxy, type TestProxy } from "../support/net.js";

interface CurlResult {
  code: number;
  stdout: string;
  stderr: string;
}

function curl(args: string[]): Promise<CurlResult> {
  return new Promise((resolve) => {
    execFile("curl", ["-sS", "--max-time", "10", ...args], (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === "number" ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

let http: Server;
let httpPort: number;

beforeAll(async () => {
  http = createServer((req, res) => {
    res.setHeader("content-type", "text/plain");
    res.end(`hello ${req.method} ${req.url} host=${req.headers.host}`);
  });
  http.listen(0, "127.0.0.1");
  await once(http, "listening");
  httpPort = (http.address() as AddressInfo).port;
});

afterAll(async () => {
  http.closeAllConnections();
  await new Promise((resolve) => http.close(resolve));
});

describe("curl without authentication", () => {
  let proxy: TestProxy;
  beforeAll(async () => {
    proxy = await startProxy();
  });
  afterAll(async () => proxy.stop());

  const modes: Array<[string, string, 4 | "4a" | 5, "ipv4" | "domain"]> = [
    ["--socks4", "127.0.0.1", 4, "ipv4"],
    ["--socks4a", "localhost", "4a", "domain"],
    ["--socks5", "127.0.0.1", 5, "ipv4"],
    ["--socks5-hostname", "localhost", 5, "domain"],
  ];

  for (const [flag, host, version, type] of modes) {
    it(`${flag} fetches a page and the session is reported as SOCKS ${version}`, async () => {
      const path = `/page-${version}`;
      const result = await curl([flag, `127.0.0.1:${proxy.port}`, `http://${host}:${httpPort}${path}`]);
      expect(result.stderr).toBe("");
      expect(result.code).toBe(0);
      expect(result.stdout).toBe(`hello GET ${path} host=${host}:${httpPort}`);
      const request = proxy.observer.last("request");
      expect(request.version).toBe(version);
      expect(request.destination).toMatchObject({ type, host, port: httpPort });
      const closed = await proxy.observer.closed(request.id);
      expect(closed.reason).toBe("completed");
      expect(closed.bytesDownReceived).toBeGreaterThan(result.stdout.length);
    });
  }

  it("--socks5 to a closed port fails with curl's proxy error after a 05 reply", async () => {
    const result = await curl(["--socks5", `127.0.0.1:${proxy.port}`, "http://127.0.0.1:9/"]);
    expect(result.code).toBe(97);
    const reply = proxy.observer.last("reply");
    expect(reply).toMatchObject({ rep: 0x05, errno: "ECONNREFUSED" });
  });

  it("--socks5-hostname to an unresolvable name fails with a 04 reply", async () => {
    const result = await curl(["--socks5-hostname", `127.0.0.1:${proxy.port}`, "http://nonexistent.invalid/"]);
    expect(result.code).toBe(97);
    expect(proxy.observer.last("reply")).toMatchObject({ rep: 0x04, code: "DNS_FAILED" });
  });
});

describe("curl with --proxy-user against username/password", () => {
  let proxy: TestProxy;
  beforeAll(async () => {
    const credentials = new Credentials();
    credentials.add("alice", "s3cret:with:colons");
    proxy = await startProxy({ credentials });
  });
  afterAll(async () => proxy.stop());

  it("the right password gets through and the user is recorded", async () => {
    const result = await curl([
      "--socks5-hostname",
      `127.0.0.1:${proxy.port}`,
      "--proxy-user",
      "alice:s3cret:with:colons",
      `http://localhost:${httpPort}/secret`,
    ]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("hello GET /secret");
    const auth = proxy.observer.last("auth");
    expect(auth).toMatchObject({ method: 0x02, user: "alice", accepted: true });
    expect(JSON.stringify(proxy.observer.facts)).not.toContain("s3cret");
    expect(proxy.observer.last("request").user).toBe("alice");
  });

  it("a wrong password is refused and no request is made", async () => {
    const before = proxy.observer.of("request").length;
    const result = await curl(["--socks5", `127.0.0.1:${proxy.port}`, "--proxy-user", "alice:wrong", `http://127.0.0.1:${httpPort}/`]);
    expect(result.code).toBe(97);
    const auth = proxy.observer.last("auth");
    expect(auth).toMatchObject({ method: 0x02, user: "alice", accepted: false });
    const closed = await proxy.observer.closed(auth.id);
    expect(closed.reason).toBe("auth-failed");
    expect(proxy.observer.of("request").length).toBe(before);
  });

  it("no credentials at all gets 05 ff", async () => {
    const result = await curl(["--socks5", `127.0.0.1:${proxy.port}`, `http://127.0.0.1:${httpPort}/`]);
    expect(result.code).toBe(97);
    expect(proxy.observer.last("auth")).toMatchObject({ method: 0xff, accepted: false });
  });

  it("SOCKS4 cannot authenticate and is refused with CD 91", async () => {
    const result = await curl(["--socks4", `127.0.0.1:${proxy.port}`, `http://127.0.0.1:${httpPort}/`]);
    expect(result.code).toBe(97);
    expect(proxy.observer.last("auth")).toMatchObject({ version: 4, accepted: false });
  });
});
