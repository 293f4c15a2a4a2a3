/**
 * What an onAuth answer means next to `--auth` (README "Addons"): credentials are checked first;
 * `{ reject }` refuses even good credentials; `{ accept }` cannot let in what `--auth` refused.
 * Without `--auth`, `{ accept }` and no opinion both let the client in.
 */
import { describe, expect, it } from "vitest";
import { Credentials, allowAllHooks } from "../../../src/engine/index.js";
import { RawClient, useTestProxies } from "../../support/net.js";

const { cleanups, proxy } = useTestProxies();

function users(...pairs: Array<[string, string]>): Credentials {
  const credentials = new Credentials();
  for (const [user, pass] of pairs) credentials.add(user, pass);
  return credentials;
}

/** 05 01 02, then RFC 1929; the status byte pair in hex. */
async function login(port: number, user: string, password: string): Promise<string> {
  const c = await RawClient.connect(port);
  cleanups.push(async () => c.destroy());
  c.write("05 01 02");
  expect((await c.read(2)).toString("hex")).toBe("0502");
  c.write(Buffer.concat([Buffer.of(1, user.length), Buffer.from(user), Buffer.of(password.length), Buffer.from(password)]));
  return (await c.read(2)).toString("hex");
}

const answering = (answer: { accept: true } | { reject: true } | undefined) => ({ ...allowAllHooks, auth: () => answer });

describe("onAuth with --auth", () => {
  it("{ accept } cannot let in wrong passwords or unknown users", async () => {
    const { port } = await proxy({ credentials: users(["alice", "secret"]), hooks: answering({ accept: true }) });
    expect(await login(port, "alice", "secret")).toBe("0100");
    expect(await login(port, "alice", "wrong")).toBe("0101");
    expect(await login(port, "mallory", "x")).toBe("0101");
  });

  it("{ reject } refuses even good credentials", async () => {
    const { port } = await proxy({ credentials: users(["alice", "secret"]), hooks: answering({ reject: true }) });
    expect(await login(port, "alice", "secret")).toBe("0101");
  });

  it("without --auth, { accept } lets the client in", async () => {
    const { port } = await proxy({ hooks: answering({ accept: true }) });
    expect(await login(port, "anyone", "x")).toBe("0100");
  });
});
