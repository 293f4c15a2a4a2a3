/**
 * The real CLI as a child process for end-to-end tests: `socksmith run --headless` on a free
 * loopback port, a UDP client that talks through a proxy's UDP ASSOCIATE, and the fixture most
 * CLI tests share (a folder, the children to kill, an HTTP server; curl through a proxy).
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, expect } from "vitest";
import { SocksClient } from "socks";
import type { ClientReplayResult, UdpReplayDetail } from "../../src/replay/client-replay.js";
import { sleep, withTimeout } from "./net.js";

export const CLI = join(import.meta.dirname, "../../dist/cli.js");

/** One element of `socksmith replay --json`: a replay's result without its payloads (`show --json` has those). */
export type ReplayJson = Omit<ClientReplayResult, "chunks" | "udp"> & {
  readonly udp?: Omit<UdpReplayDetail, "datagrams">;
  readonly recordedAs?: number;
  readonly notRecorded?: string;
};

/** The results `socksmith replay --json` printed. */
export function replayJson(stdout: string): ReplayJson[] {
  return JSON.parse(stdout) as ReplayJson[];
}

export interface CliProxy {
  child: ChildProcess;
  port: number;
  stdout: string[];
  stderr: string[];
  /** Settles with the exit code. */
  exit: Promise<number | null>;
  /** SIGINT, then the exit code. */
  stop(): Promise<number | null>;
}

/** Starts `socksmith run --headless -l 127.0.0.1:0 ARGS…` in `cwd`; `children` collects it for cleanup. */
export async function runProxy(args: string[], cwd: string, children: ChildProcess[]): Promise<CliProxy> {
  const child = spawn(process.execPath, [CLI, "run", "--headless", "-l", "127.0.0.1:0", ...args], { stdio: ["ignore", "pipe", "pipe"], cwd });
  children.push(child);
  const stdout: string[] = [];
  const stderr: string[] = [];
  child.stdout!.on("data", (d: Buffer) => stdout.push(...d.toString().split("\n").filter(Boolean)));
  child.stderr!.on("data", (d: Buffer) => stderr.push(...d.toString().split("\n").filter(Boolean)));
  const exit = once(child, "exit").then(([code]) => code as number | null);
  const port = await withTimeout(
    (async () => {
      for (;;) {
        const m = stdout.map((l) => /listening on 127\.0\.0\.1:(\d+)/.exec(l)).find(Boolean);
        if (m) return Number(m[1]);
        if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}: ${stderr.join("\n")}`);
        await sleep(20);
      }
    })(),
    10_000,
    "proxy did not start",
  );
  return {
    child,
    port,
    stdout,
    stderr,
    exit,
    stop: () => {
      child.kill("SIGINT");
      return withTimeout(exit, 10_000, "proxy did not stop");
    },
  };
}

/** Sends each payload through a UDP association of the proxy and collects the answers. */
export async function udpExchange(proxyPort: number, targetPort: number, payloads: string[], waitMs = 1000): Promise<string[]> {
  const client = new SocksClient({ proxy: { host: "127.0.0.1", port: proxyPort, type: 5 }, command: "associate", destination: { host: "0.0.0.0", port: 0 } });
  client.on("error", () => {});
  const established = new Promise<{ remoteHost: { host: string; port: number } }>((resolve) => client.once("established", (info) => resolve(info as never)));
  client.connect();
  const relay = (await withTimeout(established, 5000, "no UDP association")).remoteHost;
  const local: UdpSocket = createSocket("udp4");
  local.bind(0, "127.0.0.1");
  await once(local, "listening");
  const answers: string[] = [];
  try {
    for (const payload of payloads) {
      const answer = new Promise<string | undefined>((resolve) => {
        const timer = setTimeout(() => resolve(undefined), waitMs);
        local.once("message", (msg) => {
          clearTimeout(timer);
          const frame = SocksClient.parseUDPFrame(msg);
          expect(frame.remoteHost.port).toBe(targetPort);
          resolve(frame.data.toString());
        });
      });
      local.send(SocksClient.createUDPFrame({ remoteHost: { host: "127.0.0.1", port: targetPort }, data: Buffer.from(payload) }), relay.port, relay.host);
      const got = await answer;
      if (got !== undefined) answers.push(got);
    }
  } finally {
    local.close();
    client.removeAllListeners();
    (client as unknown as { socket?: { destroy(): void } }).socket?.destroy();
  }
  return answers;
}

/**
 * The usual end-to-end fixture: a temporary folder, the CLI children to kill after each test,
 * and an HTTP server on loopback that answers `handler(url)` (by default `served URL`).
 * Registers its own vitest hooks; read `http.port` inside tests.
 */
export function useCliFixture(prefix: string, handler: (url: string) => string = (url) => `served ${url}`) {
  const dir = mkdtempSync(join(tmpdir(), `socksmith-${prefix}-`));
  const children: ChildProcess[] = [];
  const http = { port: 0 };
  let server: Server | undefined;
  beforeAll(async () => {
    server = createServer((req, res) => res.end(handler(req.url ?? "/")));
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    http.port = (server.address() as AddressInfo).port;
  });
  afterEach(() => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  });
  afterAll(async () => {
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, children, http };
}

/** Runs a program to its end (bounded); never rejects. */
export function runToEnd(file: string, args: string[], timeoutMs = 30_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** curl through a SOCKS5 proxy on loopback (`credentials` like "alice:pw"); the body, or undefined when it failed. */
export async function curlVia(proxyPort: number, url: string, credentials?: string): Promise<string | undefined> {
  const proxy = `socks5://${credentials === undefined ? "" : `${credentials}@`}127.0.0.1:${proxyPort}`;
  const result = await runToEnd("curl", ["-s", "--max-time", "5", "-x", proxy, url]);
  return result.code === 0 ? result.stdout : undefined;
}
