/**
 * Where Node's Module#_compile does not work, addons still load (through a .cjs beside them) and
 * `run` says so once, with the reason: the warning comes from startAddons.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { startAddons } from "../../src/cli/addons.js";
import { simulateBrokenCompile } from "../../src/hooks/bundle.js";

const dir = mkdtempSync(join(tmpdir(), "socksmith-compile-warning-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("startAddons when Module#_compile is broken", () => {
  it("loads the addon another way and warns once, naming the reason", async () => {
    const file = join(dir, "deny.ts");
    writeFileSync(file, "export default { onRequest: () => ({ deny: 2 }) };\n");
    simulateBrokenCompile("simulated: _compile is gone");
    const errors: string[] = [];
    const running = await startAddons([file], new Map(), 5000, { info: () => {}, error: (m) => errors.push(m), tagged: () => {} });
    try {
      expect(running.dispatcher.loaded.map((a) => a.name)).toEqual(["deny"]);
      expect(errors).toEqual([expect.stringMatching(/^WARNING: addons are evaluated by writing and requiring a \.cjs .*simulated: _compile is gone$/)]);
    } finally {
      await running.close();
    }
  });
});
