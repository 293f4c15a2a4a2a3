/**
 * What no hook wrapper can catch (issue 11; docs/architecture.md, "Trust rules"): an addon that throws from its own
 * timer, or rejects a promise nobody awaits, must not end the proxy. `socksmith run` reports it
 * with the addon's file:line and keeps serving.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { curlVia, runProxy, useCliFixture } from "../support/cli.js";
import { sleep, until } from "../support/net.js";

const { dir, children, http } = useCliFixture("last-resort");
const curl = (proxyPort: number, path: string) => curlVia(proxyPort, `http://127.0.0.1:${http.port}${path}`);

describe("errors thrown outside any hook call", () => {
  it("a timer that throws and a rejection nobody awaits are reported with the addon's file:line; the proxy keeps serving", async () => {
    const file = join(dir, "stray.ts");
    writeFileSync(
      file,
      [
        "export default {",
        "  onRequest() {",
        '    setTimeout(() => { throw new Error("late throw"); }, 1);',
        '    void Promise.reject(new Error("nobody awaits me"));',
        "    return undefined;",
        "  },",
        "};",
        "",
      ].join("\n"),
    );
    const proxy = await runProxy(["--no-capture", "-s", file], dir, children);
    expect(await curl(proxy.port, "/1")).toBe("served /1");
    // Both reports of the first request are in (or the process has ended: the checks below say how).
    const reported = () => ["uncaught exception", "unhandled rejection"].every((what) => proxy.stderr.some((l) => l.includes(`addon stray: ${what} at`)));
    await until(() => reported() || proxy.child.exitCode !== null, 5_000, "the reports of the first request");
    expect(await curl(proxy.port, "/2")).toBe("served /2");
    // A negative check needs a duration: the second request's throw and rejection do not end the process either.
    await sleep(100);
    expect(proxy.child.exitCode).toBeNull();
    const log = proxy.stderr.join("\n");
    expect(log).toMatch(new RegExp(`addon stray: uncaught exception at ${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:3:\\d+: late throw`));
    expect(log).toMatch(new RegExp(`addon stray: unhandled rejection at ${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:4:\\d+: nobody awaits me`));
    await proxy.stop();
  });
});
