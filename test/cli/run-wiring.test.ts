/**
 * `run`'s start-up and stderr log as a user sees them: an existing capture file that others can
 * read gets a loud warning (one socksmith creates does not); addon log text and hook error
 * messages with terminal control sequences reach stderr escaped.
 */
import type { ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { runProxy } from "../support/cli.js";
import { openTunnel, startEchoServer } from "../support/net.js";

const dir = mkdtempSync(join(tmpdir(), "socksmith-run-wiring-"));
const children: ChildProcess[] = [];
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill("SIGKILL");
});

const RAW_CONTROL = /[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/;

describe("run: capture file mode", () => {
  it("warns about an existing capture file others can read, not about one it creates", async () => {
    const cwd = mkdtempSync(join(dir, "cwd-"));
    writeFileSync(join(cwd, "shared.db"), "");
    chmodSync(join(cwd, "shared.db"), 0o644);
    const shared = await runProxy(["-w", "shared.db"], cwd, children);
    expect(await shared.stop()).toBe(0);
    expect(shared.stderr).toContain(
      "WARNING: capture file shared.db is accessible to other users (mode 0644) and will hold every byte relayed; chmod 600 shared.db",
    );

    const fresh = await runProxy(["-w", "fresh.db"], cwd, children);
    expect(await fresh.stop()).toBe(0);
    expect(fresh.stderr.join("\n")).not.toContain("WARNING");
  });
});

describe("run: the stderr log escapes addon text", () => {
  it("ctx.log text and a hook's error message reach stderr without a raw control byte", async () => {
    const addon = join(dir, "noisy.ts");
    writeFileSync(
      addon,
      `export default {
  name: "noisy",
  onRequest(request, ctx) {
    ctx.log("title \\u001b]0;pwned\\u0007 csi \\u009b2J bidi \\u202eevil");
    return undefined;
  },
  onClose() {
    throw new Error("boom \\u001b[2J\\u001b]0;again\\u0007");
  },
};
`,
    );
    const echo = await startEchoServer();
    try {
      const proxy = await runProxy(["--no-capture", "-s", addon], mkdtempSync(join(dir, "cwd-")), children);
      const tunnel = await openTunnel(proxy.port, echo.port);
      tunnel.end();
      await tunnel.readToEnd();
      const deadline = Date.now() + 5000;
      while (!proxy.stderr.some((l) => l.includes("boom")) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(await proxy.stop()).toBe(0);
      const logged = proxy.stderr.find((l) => l.includes("title"));
      const failed = proxy.stderr.find((l) => l.includes("boom"));
      expect(logged).toContain("title \\x1b]0;pwned\\x07 csi \\x9b2J bidi \\u{202e}evil");
      expect(failed).toContain("boom \\x1b[2J\\x1b]0;again\\x07");
      for (const line of proxy.stderr) expect(line).not.toMatch(RAW_CONTROL);
    } finally {
      await echo.close();
    }
  });
});
