/** `run --intercept`: a person must be there to answer, so it needs the TUI; its filter is checked at start. */
import { describe, expect, it } from "vitest";
import { CLI, runToEnd } from "../support/cli.js";

const run = (...args: string[]) => runToEnd(process.execPath, [CLI, "run", "-l", "127.0.0.1:0", "--no-capture", ...args], 10_000);

describe("run --intercept", () => {
  it("with --headless: a usage error in one line, exit 2", async () => {
    const { code, stderr } = await run("--headless", "--intercept", "host:example.com");
    expect(code).toBe(2);
    expect(stderr.trim()).toBe("socksmith: --intercept needs the TUI to answer what it pauses: drop --headless");
  });

  it("without a terminal: a usage error, exit 2, before the proxy listens", async () => {
    const { code, stdout, stderr } = await run("--intercept", "stage:request");
    expect(code).toBe(2);
    expect(stdout).toBe("");
    expect(stderr).toContain("--intercept needs the TUI to answer what it pauses (and a terminal: this is not one)");
    expect(stderr).not.toContain("running headless");
  });

  it("a filter that does not parse: the caret under the column, exit 2", async () => {
    const { code, stderr } = await run("--headless", "--intercept", "stage:nope");
    expect(code).toBe(2);
    // The headless check comes first; without it the filter's own error shows.
    expect(stderr).toContain("drop --headless");
    const plain = await run("--intercept", "host:x & stage:nope");
    expect(plain.code).toBe(2);
    const text = "host:x & stage:nope";
    // The caret stands under the bad value.
    expect(plain.stderr).toContain(`--intercept: stage must be one of request, up, down, datagram\n  ${text}\n  ${" ".repeat(text.indexOf("nope"))}^`);
  });
});
