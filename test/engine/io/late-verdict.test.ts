/**
 * A data hook that answers after its session ended (a slow addon, a person answering a paused
 * chunk late): the verdict changes nothing, and no fact about the session comes after its close.
 */
import { describe, expect, it } from "vitest";
import { allowAllHooks, type DataVerdict, type HookRunner } from "../../../src/engine/index.js";
import type { Socket } from "node:net";
import { RawClient, connect5, hex, startServer, useTestProxies, until } from "../../support/net.js";

const { cleanups, proxy } = useTestProxies();

describe("a data hook's late verdict", () => {
  for (const served of [false, true]) {
    it(`${served ? "served" : "relayed"}: answered after the client left, it is dropped; the session's close stays its last fact`, async () => {
      let far: Socket | undefined;
      const echo = await startServer((socket) => {
        far = socket;
      });
      cleanups.push(() => echo.close());
      let answer!: (verdict: DataVerdict) => void;
      let asked = false;
      const hooks: HookRunner = {
        ...allowAllHooks,
        ...(served ? { request: () => ({ serve: true as const }) } : {}),
        wantsData: () => true,
        data: () => {
          asked = true;
          return new Promise<DataVerdict>((resolve) => (answer = resolve));
        },
      };
      const p = await proxy({ hooks });
      p.observer.chunk = (fact) => {
        p.observer.facts.push({ kind: "chunk", fact });
      };
      const client = await RawClient.connect(p.port);
      client.write(Buffer.concat([hex("050100"), connect5(echo.port)]));
      await client.read(12);
      client.write(Buffer.from("held"));
      await until(() => asked, 3_000, "the hook was never asked");
      // The session ends from elsewhere while the hook holds the chunk: the target resets (relayed),
      // the proxy shuts the session (served, which has no target).
      if (served) p.engine.destroyAll();
      else far?.resetAndDestroy();
      await until(() => p.observer.facts.some((f) => f.kind === "closed"), 3_000, "the session never closed");
      answer({ replace: Buffer.from("too late") });
      await new Promise((resolve) => setImmediate(resolve));
      const kinds = p.observer.facts.map((f) => f.kind);
      expect(kinds.at(-1)).toBe("closed");
      expect(kinds.filter((k) => k === "chunk")).toEqual([]);
    });
  }
});
