/**
 * `run --allow/--deny` through the built CLI with curl: a denied destination fails curl with the
 * SOCKS5 refusal, the order across both flags decides, the proxy's own port is refused, `show`
 * names the rule, and a bad rule is a usage error.
 */
import { join } from "node:path";
import { mkdtempSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { CLI, curlVia, runProxy, runToEnd, useCliFixture } from "../support/cli.js";

const { dir, children, http } = useCliFixture("rules");

/** curl through the proxy: its exit code (97: curl could not complete the SOCKS5 connection, for any REP; the log says which). */
async function curlCode(proxyPort: number, url: string): Promise<number> {
  return (await runToEnd("curl", ["-s", "--max-time", "5", "-x", `socks5://127.0.0.1:${proxyPort}`, url])).code;
}

describe("run --allow / --deny", () => {
  it("--deny: curl gets the refusal, the log line and show name the rule", async () => {
    const cwd = mkdtempSync(join(dir, "deny-"));
    const proxy = await runProxy(["--deny", "127.0.0.0/8"], cwd, children);
    expect(await curlCode(proxy.port, `http://127.0.0.1:${http.port}/x`)).toBe(97);
    expect(await proxy.stop()).toBe(0);
    expect(proxy.stdout.some((l) => /#1 .* CONNECT 127\.0\.0\.1:\d+ 02 not allowed .*\[denied-by-rule\]/.test(l))).toBe(true);
    const shown = await runToEnd(process.execPath, [CLI, "show", "1", join(cwd, "socksmith.db")]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain(`anomaly denied-by-rule: --deny 127.0.0.0/8 (127.0.0.1:${http.port})`);
  });

  it("first match wins across both flags, in command-line order", async () => {
    const allowFirst = await runProxy(["--allow", `127.0.0.1:${http.port}`, "--deny", "127.0.0.0/8"], dir, children);
    expect(await curlVia(allowFirst.port, `http://127.0.0.1:${http.port}/ok`)).toBe("served /ok");
    await allowFirst.stop();
    const denyFirst = await runProxy(["--deny", "127.0.0.0/8", "--allow", `127.0.0.1:${http.port}`], dir, children);
    expect(await curlCode(denyFirst.port, `http://127.0.0.1:${http.port}/ok`)).toBe(97);
    await denyFirst.stop();
    expect(denyFirst.stdout.some((l) => / 02 not allowed .*\[denied-by-rule\]/.test(l))).toBe(true);
  });

  it("a host glob refuses a name; port rules leave other ports alone", async () => {
    const proxy = await runProxy(["--deny", "*.blocked.test", "--deny", `:${http.port === 1 ? 2 : http.port - 1}`], dir, children);
    // socks5h: the proxy sees the name (refused before any lookup, so no DNS is involved).
    const named = await runToEnd("curl", ["-s", "--max-time", "5", "-x", `socks5h://127.0.0.1:${proxy.port}`, "http://www.blocked.test/"]);
    expect(named.code).toBe(97);
    expect(await curlVia(proxy.port, `http://127.0.0.1:${http.port}/p`)).toBe("served /p");
    await proxy.stop();
    expect(proxy.stdout.some((l) => / CONNECT www\.blocked\.test:80 02 not allowed .*\[denied-by-rule\]/.test(l))).toBe(true);
  });

  it("a request for the proxy's own address and port is refused (no loops)", async () => {
    const proxy = await runProxy([], dir, children);
    expect(await curlCode(proxy.port, `http://127.0.0.1:${proxy.port}/`)).toBe(97);
    await proxy.stop();
    expect(proxy.stdout.some((l) => / 02 not allowed .*\[loop\]/.test(l))).toBe(true);
  });

  it("a bad rule is a usage error naming the flag and the rule", async () => {
    const bad = await runToEnd(process.execPath, [CLI, "run", "--headless", "-l", "127.0.0.1:0", "--allow", "*.ok", "--deny", "10.1.2.3/8"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--deny: bad rule "10.1.2.3/8": 10.1.2.3 has bits set beyond /8 (did you mean 10.0.0.0/8?)');
    const port = await runToEnd(process.execPath, [CLI, "run", "--headless", "-l", "127.0.0.1:0", "--allow", ":99999"]);
    expect(port.code).toBe(2);
    expect(port.stderr).toContain('--allow: bad rule ":99999": port out of range (1-65535)');
  });
});
