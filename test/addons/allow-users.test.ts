/**
 * The allow-users recipe as a user runs it: `socksmith run -s addons/allow-users.ts` with curl
 * as the client (curl `--socks5 user:pass@…` offers methods 00 and 02). Alone, a listed user gets
 * in whatever the password and nobody else does; with --auth, the password is checked too.
 */
import { mkdtempSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { curlVia, runProxy, useCliFixture } from "../support/cli.js";

const RECIPE = join(import.meta.dirname, "../../addons/allow-users.ts");
const { dir, children, http } = useCliFixture("allow-users", () => "hello");

/** curl through the proxy; `credentials` like "alice:pw", or none. Resolves with the body, or undefined when refused. */
const curl = (port: number, credentials?: string) => curlVia(port, `http://127.0.0.1:${http.port}/`, credentials);

async function proxyWith(args: string[]) {
  return runProxy(["--no-capture", "-s", RECIPE, "--set", "allow-users.users=alice,carol", ...args], mkdtempSync(join(dir, "cwd-")), children);
}

describe("addons/allow-users.ts with curl", () => {
  it("alone: listed users get in with any password, as themselves; others and anonymous clients do not", async () => {
    const proxy = await proxyWith([]);
    expect(await curl(proxy.port, "alice:x")).toBe("hello");
    expect(await curl(proxy.port, "carol:anything")).toBe("hello");
    expect(await curl(proxy.port, "bob:x")).toBeUndefined();
    expect(await curl(proxy.port)).toBeUndefined();
    expect(await proxy.stop()).toBe(0);
    // The log line names the user who got in.
    expect(proxy.stdout.filter((l) => / CONNECT /.test(l)).some((l) => l.includes('user="alice"') && / 00 ok /.test(l))).toBe(true);
  });

  it("with --auth: the password is checked too, and users missing from either list stay out", async () => {
    const proxy = await proxyWith(["--auth", "alice:secret", "--auth", "bob:pw"]);
    expect(await curl(proxy.port, "alice:secret")).toBe("hello");
    expect(await curl(proxy.port, "alice:wrong")).toBeUndefined();
    expect(await curl(proxy.port, "alice:")).toBeUndefined();
    expect(await curl(proxy.port, "bob:pw")).toBeUndefined();
    expect(await curl(proxy.port, "carol:x")).toBeUndefined();
    expect(await curl(proxy.port, "dave:x")).toBeUndefined();
    expect(await curl(proxy.port)).toBeUndefined();
    expect(await proxy.stop()).toBe(0);
  });
});
