/**
 * Without `--auth`, a SOCKS5 client that offers both no-auth and username/password (curl with
 * `--socks5 user:pass@…` sends 05 02 00 02) is asked about no-auth first. When that is refused
 * (an onAuth addon that lets in only some users), the proxy selects username/password instead of
 * closing, and decides again on the credentials — as it does with `--auth`.
 */
import { describe, it } from "vitest";
import { FIX, cat, hex } from "../codec/fixtures.js";
import { askAuthNone, askAuthUserPass, askRequest, authDecided, closeClient, Playbook, received, sendToClient } from "./playbook.js";

const noAuth = { authRequired: false };
const ipv4 = (host: string, port: number) => ({ type: "ipv4" as const, host, port });

describe("no-auth refused, username/password offered", () => {
  it("selects 02 and asks again with the credentials; accepted → 01 00 and the request", () => {
    new Playbook(noAuth)
      .on(received(FIX.greetingNoAuthAndUserPass), askAuthNone([0x00, 0x02]))
      .on(authDecided(false), sendToClient("05 02"))
      .phase("userpass")
      .on(received(FIX.userPass), askAuthUserPass([0x00, 0x02], "user", "pass"))
      .on(authDecided(true), sendToClient("01 00"))
      .on(received(FIX.connectIPv4), askRequest(5, "connect", ipv4("127.0.0.1", 8080)));
  });

  it("refused again on the credentials → 01 01 and close", () => {
    new Playbook(noAuth)
      .on(received(FIX.greetingNoAuthAndUserPass), askAuthNone([0x00, 0x02]))
      .on(authDecided(false), sendToClient("05 02"))
      .on(received(FIX.userPass), askAuthUserPass([0x00, 0x02], "user", "pass"))
      .on(authDecided(false), sendToClient("01 01"), closeClient("auth-failed"))
      .phase("closed");
  });

  it("credentials pipelined behind the greeting are read once 02 is selected", () => {
    new Playbook(noAuth)
      .on(received(cat(FIX.greetingNoAuthAndUserPass, FIX.userPass, FIX.connectIPv4)), askAuthNone([0x00, 0x02]))
      .on(authDecided(false), sendToClient("05 02"), askAuthUserPass([0x00, 0x02], "user", "pass"))
      .on(authDecided(true), sendToClient("01 00"), askRequest(5, "connect", ipv4("127.0.0.1", 8080)));
  });

  it("without 02 among the offers a refused no-auth is still 05 ff and close", () => {
    new Playbook(noAuth)
      .on(received(hex("05 02 00 01")), askAuthNone([0x00, 0x01]))
      .on(authDecided(false), sendToClient("05 ff"), closeClient("auth-failed"))
      .phase("closed");
  });
});
