/**
 * Malformed hook answers as a user meets them (issue 11, part 1): `socksmith run` with an addon
 * whose answers are wrong keeps running, logs each as a hook failure with the hook's file:line,
 * and serves curl as if the hook had no opinion; `addon check` sees such answers with TypeScript.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CLI, runProxy, runToEnd as run, useCliFixture } from "../support/cli.js";

const { dir, children, http } = useCliFixture("hook-answers");

/** An addon whose hooks answer, in turn, each of `answers` (one per session), then undefined. */
function cyclingAddon(name: string, hook: string, answers: string[]): string {
  const file = join(dir, `${name}.ts`);
  writeFileSync(
    file,
    [
      "const answers: unknown[] = [",
      ...answers.map((a) => `  ${a},`),
      "];",
      "let n = 0;",
      "export default {",
      `  ${hook}() {`,
      "    return answers[n++ % answers.length] as never;",
      "  },",
      "};",
      "",
    ].join("\n"),
  );
  return file;
}

describe("a running proxy meets malformed answers", () => {
  it("answers that used to end the process are logged with the hook's file:line; curl is served every time", async () => {
    const answers = [
      "{}",
      "{ block: true }",
      "{ redirect: null }",
      "{ redirect: { port: -1 } }",
      "{ redirect: { host: 5 } }",
      "{ deny: 0 }",
      '{ deny: "x" }',
      '{ deny: "2" }',
      "{ deny: 999 }",
      "{ allow: false }",
    ];
    const file = cyclingAddon("requests", "onRequest", answers);
    const proxy = await runProxy(["--no-capture", "-s", file], dir, children);
    for (let i = 0; i < answers.length; i++) {
      const curl = await run("curl", ["-s", "--max-time", "5", "--socks5", `127.0.0.1:${proxy.port}`, `http://127.0.0.1:${http.port}/${i}`]);
      expect(curl.stdout, answers[i]).toBe(`served /${i}`);
    }
    expect(proxy.child.exitCode).toBeNull();
    const failures = proxy.stderr.filter((l) => l.includes("onRequest gave an invalid answer"));
    expect(failures).toHaveLength(answers.length);
    // The hook's own line: after the answers, "];", "let n", "export default {".
    for (const line of failures) expect(line).toContain(`${file}:${answers.length + 5}:3`);
    expect(failures.find((l) => l.includes('"deny":"2"'))).toMatch(/deny must be a SOCKS5 reply code/);
    await proxy.stop();
  });

  it("onData { replace: 123 } does not stop the capture or stall the session", async () => {
    const file = cyclingAddon("data", "onData", ["{ replace: 123 }", "{ replace: null }", "{ foo: 1 }"]);
    const capture = join(dir, "data.sqlite");
    const proxy = await runProxy(["--capture", capture, "-s", file], dir, children);
    for (let i = 0; i < 3; i++) {
      const curl = await run("curl", ["-s", "--max-time", "5", "--socks5", `127.0.0.1:${proxy.port}`, `http://127.0.0.1:${http.port}/d${i}`]);
      expect(curl.stdout).toBe(`served /d${i}`);
    }
    await proxy.stop();
    const show = await run(process.execPath, [CLI, "sessions", capture]);
    expect(show.code).toBe(0);
    expect(show.stdout.split("\n").filter((l) => l.includes(`127.0.0.1:${http.port}`))).toHaveLength(3);
    expect(proxy.stderr.join("\n")).not.toMatch(/NOT NULL|capture (stopped|failed)/i);
  });
});

describe("addon check", () => {
  it("type-checks answers with TypeScript and warns with file:line", async () => {
    const file = join(dir, "typed.ts");
    writeFileSync(
      file,
      [
        'import type { Addon } from "socksmith/addon";',
        "",
        "export default {",
        "  onRequest(request) {",
        '    return request.port === 80 ? { deny: "2" } : undefined;',
        "  },",
        "} satisfies Addon;",
        "",
      ].join("\n"),
    );
    const checked = await run(process.execPath, [CLI, "addon", "check", file]);
    expect(checked.code).toBe(0);
    expect(checked.stdout).toMatch(/types: checked with TypeScript [\d.]+: 1 problem/);
    expect(checked.stderr).toContain(`warning: ${file}:4:3: TS2322`);
    expect(checked.stderr).toMatch(/Type 'string' is not assignable to type 'number'/);

    const skipped = await run(process.execPath, [CLI, "addon", "check", "--no-types", file]);
    expect(skipped.stdout).not.toContain("types:");
  });
});
