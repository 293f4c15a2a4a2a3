import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { BIND_EARLY_DATA_MAX, SessionMachine } from "../../../src/engine/session/machine.js";
import { checkDestination } from "../../../src/engine/address-rules.js";
import type { SessionCommand } from "../../../src/engine/session/commands.js";
import type { ProtocolErrorCode } from "../../../src/engine/errors.js";
import { decodeReply } from "../../../src/engine/codec/socks5.js";
import { decodeSocks4Reply } from "../../../src/engine/codec/socks4.js";
import { FIX, cat, chunkings, hex, latin1, repeat } from "../codec/fixtures.js";
import {
  askAuthNone,
  askAuthSocks4,
  askAuthUserPass,
  askReply,
  askReplyAt,
  askRequest,
  authDecided,
  bindFailed,
  bindListening,
  bindPeerConnected,
  BOUND,
  closeClient,
  drive,
  openBind,
  openUdpRelay,
  openUpstream,
  Playbook,
  received,
  replyDecided,
  reportAnomaly,
  reportAuthRefused,
  requestDecided,
  sendToClient,
  socks4Reply,
  socks5Failure,
  startRelay,
  startUdpRelay,
  transcriptFingerprint,
  udpRelayFailed,
  udpRelayReady,
  UNSPECIFIED,
  upstreamConnected,
  upstreamFailed,
} from "./playbook.js";

const noAuth = { authRequired: false };
const authRequired = { authRequired: true };

const ipv4 = (host: string, port: number) => ({ type: "ipv4" as const, host, port });
const domain = (host: string, port: number) => ({ type: "domain" as const, host, port });

/** A SOCKS5 request CONNECT to an ATYP 3 name (latin1) and port. */
const connectName = (name: string | Buffer, port: number): Buffer => {
  const n = typeof name === "string" ? latin1(name) : name;
  return cat(hex("05 01 00 03"), Buffer.of(n.length), n, Buffer.of(port >> 8, port & 0xff));
};

/** A SOCKS5 playbook that has already negotiated "no authentication". */
function negotiated(): Playbook {
  return new Playbook(noAuth)
    .on(received(FIX.greetingNoAuth), askAuthNone([0x00]))
    .on(authDecided(true), sendToClient("05 00"))
    .phase("request");
}

describe("SOCKS5 without authentication", () => {
  it("runs greeting → AskAuth(none) → 05 00 → request → OpenUpstream → reply → StartRelay", () => {
    const pb = new Playbook(noAuth).phase("version");
    expect(pb.machine.wantsClientBytes).toBe(true);
    expect(pb.machine.readingHandshake).toBe(true);

    pb.on(received(FIX.greetingNoAuth), askAuthNone([0x00])).phase("auth-decision");
    expect(pb.machine.version).toBe(5);
    expect(pb.machine.wantsClientBytes).toBe(false);

    pb.on(authDecided(true), sendToClient("05 00")).phase("request");
    expect(pb.machine.wantsClientBytes).toBe(true);

    pb.on(received(FIX.connectIPv4), askRequest(5, "connect", ipv4("127.0.0.1", 8080))).phase("request-decision");
    expect(pb.machine.readingHandshake).toBe(false);
    expect(pb.machine.command).toBe("connect");

    pb.on(requestDecided(undefined), openUpstream("127.0.0.1", 8080)).phase("connecting");
    expect(pb.machine.target).toEqual({ host: "127.0.0.1", port: 8080 });

    pb.on(upstreamConnected("127.0.0.1", 54321), askReply(0, { host: "127.0.0.1", port: 54321 })).phase("reply-decision");
    pb.on(replyDecided(0, "127.0.0.1", 54321), sendToClient(FIX.reply10), startRelay()).phase("relaying");
    expect(pb.machine.wantsClientBytes).toBe(false);
  });

  it("takes a greeting split after its first byte (scenario 1)", () => {
    new Playbook(noAuth)
      .on(received("05"))
      .phase("greeting")
      .on(received("01"))
      .on(received("00"), askAuthNone([0x00]));
  });

  it("keeps a request pipelined behind the greeting in one read (scenario 2)", () => {
    new Playbook(noAuth)
      .on(received(cat(FIX.greetingNoAuth, FIX.connectIPv4)), askAuthNone([0x00]))
      .on(authDecided(true), sendToClient("05 00"), askRequest(5, "connect", ipv4("127.0.0.1", 8080)))
      .on(requestDecided({ allow: true }), openUpstream("127.0.0.1", 8080));
  });

  it("returns early data sent behind the request in StartRelay.early", () => {
    new Playbook(noAuth)
      .on(received(cat(FIX.greetingNoAuth, FIX.connectDomain, FIX.early)), askAuthNone([0x00]))
      .on(authDecided(true), sendToClient("05 00"), askRequest(5, "connect", domain("example.com", 80)))
      .on(requestDecided({ allow: true }), openUpstream("example.com", 80))
      .on(upstreamConnected("10.0.0.2", 40000), askReply(0, { host: "10.0.0.2", port: 40000 }))
      .on(replyDecided(0, "10.0.0.2", 40000), sendToClient("05 00 00 01 0a 00 00 02 9c 40"), startRelay(FIX.early));
  });

  it("buffers bytes that arrive while decisions are pending and hands them over in order", () => {
    negotiated()
      .on(received(FIX.connectIPv4), askRequest(5, "connect", ipv4("127.0.0.1", 8080)))
      .on(received("41"))
      .on(requestDecided(undefined), openUpstream("127.0.0.1", 8080))
      .on(received("42 43"))
      .on(upstreamConnected("127.0.0.1", 54321), askReply(0, BOUND))
      .on(received("44"))
      .on(replyDecided(0, BOUND.host, BOUND.port), sendToClient(FIX.reply10), startRelay("41 42 43 44"));
  });

  it("handles a whole handshake fed one byte at a time", () => {
    new Playbook(noAuth)
      .trickle(FIX.greetingNoAuth, askAuthNone([0x00]))
      .on(authDecided(true), sendToClient("05 00"))
      .trickle(FIX.connectIPv6, askRequest(5, "connect", { type: "ipv6", host: "2001:db8::1", port: 443 }))
      .on(requestDecided(undefined), openUpstream("2001:db8::1", 443))
      .on(upstreamConnected("2001:db8::1", 443), askReply(0, { host: "2001:db8::1", port: 443 }))
      .on(replyDecided(0, "2001:db8::1", 443), sendToClient(FIX.reply22), startRelay());
  });

  it("selects 00 when 00 and 02 are offered and auth is optional (scenario 8)", () => {
    new Playbook(noAuth).on(received(FIX.greetingNoAuthAndUserPass), askAuthNone([0x00, 0x02])).on(authDecided(true), sendToClient("05 00"));
  });

  it("accepts NMETHODS 255 (scenario 6)", () => {
    const offered = Array.from({ length: 255 }, (_, i) => i);
    new Playbook(noAuth).on(received(FIX.greeting255), askAuthNone(offered)).on(authDecided(true), sendToClient("05 00"));
  });

  it("selects 02 when it is the only method offered, and asks about the credentials", () => {
    new Playbook(noAuth)
      .on(received(FIX.greetingUserPass), sendToClient("05 02"))
      .phase("userpass")
      .on(received(FIX.userPass), askAuthUserPass([0x02], "user", "pass"))
      .on(authDecided(true), sendToClient("01 00"))
      .phase("request");
  });

  it.each([
    ["GSSAPI only (05 01 01)", FIX.greetingGssapi, [0x01]],
    ["a private method only (05 01 80)", hex("05 01 80"), [0x80]],
    ["03 and fe", hex("05 02 03 fe"), [0x03, 0xfe]],
  ])("answers 05 ff and closes when only unsupported methods are offered: %s (scenario 7)", (_, greeting, offered) => {
    new Playbook(noAuth).on(received(greeting), reportAuthRefused(offered), sendToClient("05 ff"), closeClient("auth-failed")).phase("closed");
  });

  it("answers 05 ff and closes on NMETHODS 0 (scenario 5)", () => {
    new Playbook(noAuth).on(received(FIX.greetingNoMethods), sendToClient("05 ff"), reportAnomaly("no-methods"), closeClient("protocol-error")).phase("closed");
  });

  it("answers 05 ff and closes when the auth hook rejects a no-auth client", () => {
    new Playbook(noAuth)
      .on(received(cat(FIX.greetingNoAuth, FIX.connectIPv4)), askAuthNone([0x00]))
      .on(authDecided(false), sendToClient("05 ff"), closeClient("auth-failed"))
      .phase("closed");
  });
});

describe("SOCKS5 with authentication required", () => {
  it("refuses a client that offers only 00: 05 ff, then close", () => {
    new Playbook(authRequired).on(received(FIX.greetingNoAuth), reportAuthRefused([0x00]), sendToClient("05 ff"), closeClient("auth-failed")).phase("closed");
  });

  it("selects 02 out of 05 02 00 02 and runs the RFC 1929 sub-negotiation", () => {
    new Playbook(authRequired)
      .on(received(FIX.greetingNoAuthAndUserPass), sendToClient("05 02"))
      .on(received(FIX.userPass), askAuthUserPass([0x00, 0x02], "user", "pass"))
      .on(authDecided(true), sendToClient("01 00"))
      .on(received(FIX.connectIPv4), askRequest(5, "connect", ipv4("127.0.0.1", 8080)));
  });

  it("takes credentials + request + early data in one read (scenario 3)", () => {
    new Playbook(authRequired)
      .on(received(FIX.greetingUserPass), sendToClient("05 02"))
      .on(received(cat(FIX.userPass, FIX.connectIPv4, FIX.early)), askAuthUserPass([0x02], "user", "pass"))
      .on(authDecided(true), sendToClient("01 00"), askRequest(5, "connect", ipv4("127.0.0.1", 8080)))
      .on(requestDecided(undefined), openUpstream("127.0.0.1", 8080))
      .on(upstreamConnected(BOUND.host, BOUND.port), askReply(0, BOUND))
      .on(replyDecided(0, BOUND.host, BOUND.port), sendToClient(FIX.reply10), startRelay(FIX.early));
  });

  it("answers bad credentials with 01 01 and closes without reading the request (scenario 13)", () => {
    new Playbook(authRequired)
      .on(received(FIX.greetingUserPass), sendToClient("05 02"))
      .on(received(cat(FIX.userPassBad, FIX.connectIPv4)), askAuthUserPass([0x02], "user", "bad"))
      .on(authDecided(false), sendToClient("01 01"), closeClient("auth-failed"))
      .phase("closed")
      .on(received(FIX.connectIPv4))
      .phase("closed");
  });

  it("answers RFC 1929 VER 05 with 01 01 and closes (scenario 11)", () => {
    new Playbook(authRequired)
      .on(received(FIX.greetingUserPass), sendToClient("05 02"))
      .on(received(FIX.userPassVersion5), sendToClient("01 01"), reportAnomaly("bad-auth-version"), closeClient("auth-failed"))
      .phase("closed");
  });

  it("passes an empty password and non-UTF-8 octets to the decision as bytes (scenarios 12, 14)", () => {
    new Playbook(authRequired)
      .on(received(FIX.greetingUserPass), sendToClient("05 02"))
      .on(received(FIX.userPassEmptyPassword), askAuthUserPass([0x02], "user", ""));
    new Playbook(authRequired)
      .on(received(FIX.greetingUserPass), sendToClient("05 02"))
      .on(received(FIX.userPassBinary), askAuthUserPass([0x02], hex("ff fe"), hex("80 81")));
  });

  it("waits on truncated credentials (scenario 15: the handshake timeout is the driver's)", () => {
    const pb = new Playbook(authRequired).on(received(FIX.greetingUserPass), sendToClient("05 02")).on(received("01 04 75 73")).phase("userpass");
    expect(pb.machine.readingHandshake).toBe(true);
  });
});

describe("SOCKS5 request errors", () => {
  it("answers an unknown CMD with the full 10-byte 05 07 reply and closes (scenario 17)", () => {
    negotiated()
      .on(received(FIX.unknownCommand), reportAnomaly("unknown-command"), askReply(0x07, UNSPECIFIED, "UNKNOWN_COMMAND"))
      .on(replyDecided(0x07), sendToClient("05 07 00 01 00 00 00 00 00 00"), closeClient("protocol-error"))
      .phase("closed");
  });

  it("answers an unknown CMD as soon as the CMD byte is in", () => {
    negotiated()
      .on(received("05"))
      .on(received("f0"), reportAnomaly("unknown-command"), askReply(0x07, UNSPECIFIED, "UNKNOWN_COMMAND"))
      .on(replyDecided(0x07), sendToClient(socks5Failure(0x07)), closeClient("protocol-error"));
  });

  it("answers an unknown ATYP with the full 10-byte 05 08 reply and closes (scenario 18)", () => {
    negotiated()
      .on(received(FIX.unknownAtyp), reportAnomaly("unknown-address-type"), askReply(0x08, UNSPECIFIED, "UNKNOWN_ADDRESS_TYPE"))
      .on(replyDecided(0x08), sendToClient("05 08 00 01 00 00 00 00 00 00"), closeClient("protocol-error"))
      .phase("closed");
  });

  it("answers a request VER other than 5 with a full 05 01 reply and closes", () => {
    negotiated()
      .on(received("04 01 00 01 7f 00 00 01 1f 90"), reportAnomaly("bad-request-version"), askReply(0x01, UNSPECIFIED, "BAD_REQUEST_VERSION"))
      .on(replyDecided(0x01), sendToClient(socks5Failure(0x01)), closeClient("protocol-error"));
  });

  it("reports RSV != 0 as an anomaly and still proceeds (scenario 16)", () => {
    negotiated()
      .on(received(FIX.connectRsv1), reportAnomaly("rsv-nonzero"), askRequest(5, "connect", ipv4("127.0.0.1", 8080)))
      .on(requestDecided(undefined), openUpstream("127.0.0.1", 8080));
  });

  it("decodes an IPv4-mapped IPv6 destination as 127.0.0.1 and dials that (scenario 25)", () => {
    negotiated()
      .on(received(FIX.connectMapped), askRequest(5, "connect", ipv4("127.0.0.1", 8080)))
      .on(requestDecided(undefined), openUpstream("127.0.0.1", 8080));
  });

  it("dials an IP literal sent as a name as that IP (scenario 21)", () => {
    negotiated()
      .on(received(FIX.connectIPLiteralDomain), askRequest(5, "connect", domain("127.0.0.1", 8080)))
      .on(requestDecided(undefined), openUpstream("127.0.0.1", 8080));
  });
});

describe("request decisions and destination checks", () => {
  const requested = () => negotiated().on(received(FIX.connectDomain), askRequest(5, "connect", domain("example.com", 80)));

  it("denies with a ProtocolErrorCode: AskReply with its REP and code, then the failure reply and close", () => {
    requested()
      .on(requestDecided({ deny: "DENIED" }), askReply(0x02, UNSPECIFIED, "DENIED"))
      .on(replyDecided(0x02), sendToClient(socks5Failure(0x02)), closeClient("request-failed"))
      .phase("closed");
  });

  it("denies with a raw REP: AskReply with that REP and no code", () => {
    requested()
      .on(requestDecided({ deny: 0x05 }), askReply(0x05, UNSPECIFIED))
      .on(replyDecided(0x05), sendToClient(socks5Failure(0x05)), closeClient("request-failed"));
  });

  it("redirects host and port", () => {
    const pb = requested().on(requestDecided({ redirect: { host: "10.1.2.3", port: 8443 } }), openUpstream("10.1.2.3", 8443));
    expect(pb.machine.target).toEqual({ host: "10.1.2.3", port: 8443 });
  });

  it("redirects the port only, or the host only", () => {
    requested().on(requestDecided({ redirect: { port: 8080 } }), openUpstream("example.com", 8080));
    requested().on(requestDecided({ redirect: { host: "other.example" } }), openUpstream("other.example", 80));
  });

  it("checks a redirect target like a requested one", () => {
    requested().on(requestDecided({ redirect: { port: 0 } }), reportAnomaly("port-zero"), askReply(0x02, UNSPECIFIED, "BAD_PORT"));
    requested().on(requestDecided({ redirect: { host: "bad host" } }), reportAnomaly("bad-destination"), askReply(0x04, UNSPECIFIED, "BAD_DESTINATION"));
  });

  it("fails port 0 with REP 02 and never dials (scenario 23)", () => {
    negotiated()
      .on(received(FIX.connectPort0), askRequest(5, "connect", ipv4("127.0.0.1", 0)))
      .on(requestDecided(undefined), reportAnomaly("port-zero"), askReply(0x02, UNSPECIFIED, "BAD_PORT"))
      .on(replyDecided(0x02), sendToClient(socks5Failure(0x02)), closeClient("request-failed"));
  });

  it("fails a zero-length name with REP 04 and never dials (scenario 19)", () => {
    negotiated()
      .on(received(FIX.connectEmptyDomain), askRequest(5, "connect", domain("", 8080)))
      .on(requestDecided(undefined), reportAnomaly("bad-destination"), askReply(0x04, UNSPECIFIED, "BAD_DESTINATION"))
      .on(replyDecided(0x04), sendToClient(socks5Failure(0x04)), closeClient("request-failed"));
  });

  it("parses a 255-byte name fully and fails it with REP 04 (scenario 20)", () => {
    negotiated()
      .on(received(FIX.connectDomain255), askRequest(5, "connect", domain("a".repeat(255), 8080)))
      .on(requestDecided(undefined), reportAnomaly("bad-destination"), askReply(0x04, UNSPECIFIED, "BAD_DESTINATION"));
  });

  it.each([
    ["a NUL inside (scenario 22)", "evil\u0000.co"],
    ["a bracketed IPv6 literal (scenario 21)", "[::1]"],
    ["a space", "exa mple.com"],
    ["a control byte", "example.com\r\n"],
    ["a leading dash", "-example.com"],
    ["an empty label", "example..com"],
    ["a 64-byte label", `${"b".repeat(64)}.com`],
    ["high octets", "b\u00fccher.example"],
    ["a lone dot", "."],
  ])("fails a malformed name with REP 04: %s", (_, name) => {
    negotiated()
      .on(received(connectName(name, 80)), askRequest(5, "connect", domain(name, 80)))
      .on(requestDecided(undefined), reportAnomaly("bad-destination"), askReply(0x04, UNSPECIFIED, "BAD_DESTINATION"));
  });

  it.each(["example.com", "example.com.", "_srv.example.com", "xn--bcher-kva.example", "localhost", "a", `${"c".repeat(63)}.example`])(
    "dials a well-formed name: %s",
    (name) => {
      negotiated()
        .on(received(connectName(name, 80)), askRequest(5, "connect", domain(name, 80)))
        .on(requestDecided(undefined), openUpstream(name, 80));
    },
  );

  it.each([
    ["ATYP 1 0.0.0.0", hex("05 01 00 01 00 00 00 00 00 50"), ipv4("0.0.0.0", 80)],
    ["ATYP 4 ::", hex("05 01 00 04 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 50"), { type: "ipv6" as const, host: "::", port: 80 }],
    ["ATYP 4 ::ffff:0.0.0.0", hex("05 01 00 04 00 00 00 00 00 00 00 00 00 00 ff ff 00 00 00 00 00 50"), ipv4("0.0.0.0", 80)],
    ['ATYP 3 "0.0.0.0"', connectName("0.0.0.0", 80), domain("0.0.0.0", 80)],
    ['ATYP 3 "::"', connectName("::", 80), domain("::", 80)],
  ])("fails the unspecified address with REP 04: %s", (_, request, destination) => {
    negotiated()
      .on(received(request), askRequest(5, "connect", destination))
      .on(requestDecided(undefined), reportAnomaly("bad-destination"), askReply(0x04, UNSPECIFIED, "BAD_DESTINATION"));
  });

  // The unspecified address has more spellings than "::" (RFC 4291 §2.2); an IP literal in
  // ATYP 3 is a real client behaviour (scenario 21) and reaches checkDestination as text.
  // Dialling :: or 0.0.0.0 connects to the proxy host itself.
  it.each(["0:0:0:0:0:0:0:0", "::0", "0::0", "::ffff:0.0.0.0"])("fails the unspecified address spelled %s in ATYP 3 with REP 04", (name) => {
    negotiated()
      .on(received(connectName(name, 80)), askRequest(5, "connect", domain(name, 80)))
      .on(requestDecided(undefined), reportAnomaly("bad-destination"), askReply(0x04, UNSPECIFIED, "BAD_DESTINATION"));
  });

  it("checkDestination agrees with the machine on the simple cases", () => {
    expect(checkDestination("example.com", 80)).toBeUndefined();
    expect(checkDestination("127.0.0.1", 80)).toBeUndefined();
    expect(checkDestination("::1", 80)).toBeUndefined();
    expect(checkDestination("example.com", 0)?.code).toBe("BAD_PORT");
    expect(checkDestination("", 80)?.code).toBe("BAD_DESTINATION");
    expect(checkDestination("0.0.0.0", 80)?.code).toBe("BAD_DESTINATION");
    expect(checkDestination("a".repeat(254), 80)?.code).toBe("BAD_DESTINATION");
  });
});

describe("BIND (RFC 1928 §6, SOCKS4.protocol): two replies, then relay", () => {
  const bindRequested = () =>
    negotiated()
      .on(received(FIX.bindIPv4), askRequest(5, "bind", ipv4("127.0.0.1", 0)))
      .on(requestDecided(undefined), openBind)
      .phase("binding");

  it("listens, sends the first reply, waits for the peer, sends the second reply and relays (scenario 51)", () => {
    const pb = bindRequested()
      .on(bindListening("127.0.0.1", 40000), askReplyAt("bind-first", 0, { host: "127.0.0.1", port: 40000 }))
      .on(replyDecided(0, "127.0.0.1", 40000), sendToClient("05 00 00 01 7f 00 00 01 9c 40"))
      .phase("bind-waiting");
    // While it waits the machine keeps reading (to notice a client that gives up) and buffers.
    expect(pb.machine.wantsClientBytes).toBe(true);
    expect(pb.machine.endsOnClientFin).toBe(true);
    pb.on(received("68 69"))
      .on(bindPeerConnected("127.0.0.1", 50000), askReplyAt("bind-second", 0, { host: "127.0.0.1", port: 50000 }))
      .on(replyDecided(0, "127.0.0.1", 50000), sendToClient("05 00 00 01 7f 00 00 01 c3 50"), startRelay("68 69"))
      .phase("relaying");
  });

  it("does not check a BIND's DST like a CONNECT destination (port 0 is normal there)", () => {
    bindRequested();
  });

  it("refuses a peer from another IP in the second reply: REP 02, then close (scenario 52)", () => {
    bindRequested()
      .on(bindListening("127.0.0.1", 40000), askReplyAt("bind-first", 0, { host: "127.0.0.1", port: 40000 }))
      .on(replyDecided(0, "127.0.0.1", 40000), sendToClient("05 00 00 01 7f 00 00 01 9c 40"))
      .on(bindPeerConnected("10.0.0.9", 50000), reportAnomaly("bind-peer-mismatch"), askReplyAt("bind-second", 0x02, UNSPECIFIED, "DENIED"))
      .on(replyDecided(0x02), sendToClient(socks5Failure(0x02)), closeClient("request-failed"))
      .phase("closed");
  });

  it("accepts any peer when DST.ADDR is 0.0.0.0", () => {
    negotiated()
      .on(received("05 02 00 01 00 00 00 00 00 00"), askRequest(5, "bind", ipv4("0.0.0.0", 0)))
      .on(requestDecided(undefined), openBind)
      .on(bindListening("127.0.0.1", 40000), askReplyAt("bind-first", 0, { host: "127.0.0.1", port: 40000 }))
      .on(replyDecided(0, "127.0.0.1", 40000), sendToClient("05 00 00 01 7f 00 00 01 9c 40"))
      .on(bindPeerConnected("10.0.0.9", 50000), askReplyAt("bind-second", 0, { host: "10.0.0.9", port: 50000 }));
  });

  it("fails the first reply when no listener can be opened", () => {
    bindRequested()
      .on(bindFailed("GENERAL_FAILURE", "EADDRINUSE"), askReplyAt("bind-first", 0x01, UNSPECIFIED, "GENERAL_FAILURE", "EADDRINUSE"))
      .on(replyDecided(0x01), sendToClient(socks5Failure(0x01)), closeClient("request-failed"));
  });

  it("fails the second reply when no peer comes in time (scenario 53)", () => {
    bindRequested()
      .on(bindListening("127.0.0.1", 40000), askReplyAt("bind-first", 0, { host: "127.0.0.1", port: 40000 }))
      .on(replyDecided(0, "127.0.0.1", 40000), sendToClient("05 00 00 01 7f 00 00 01 9c 40"))
      .on(bindFailed("CONNECT_TIMEOUT"), askReplyAt("bind-second", 0x06, UNSPECIFIED, "CONNECT_TIMEOUT"))
      .on(replyDecided(0x06), sendToClient(socks5Failure(0x06)), closeClient("request-failed"));
  });

  it("closes a client that sends more than BIND_EARLY_DATA_MAX bytes while waiting", () => {
    const pb = bindRequested()
      .on(bindListening("127.0.0.1", 40000), askReplyAt("bind-first", 0, { host: "127.0.0.1", port: 40000 }))
      .on(replyDecided(0, "127.0.0.1", 40000), sendToClient("05 00 00 01 7f 00 00 01 9c 40"))
      .on(received(repeat(0x61, BIND_EARLY_DATA_MAX)));
    pb.on(received("61"), reportAnomaly("bind-early-data"), closeClient("protocol-error")).phase("closed");
  });

  it("answers a denied BIND in the first reply", () => {
    negotiated()
      .on(received(FIX.bindIPv4), askRequest(5, "bind", ipv4("127.0.0.1", 0)))
      .on(requestDecided({ deny: "DENIED" }), askReplyAt("bind-first", 0x02, UNSPECIFIED, "DENIED"))
      .on(replyDecided(0x02), sendToClient(socks5Failure(0x02)), closeClient("request-failed"));
  });

  it("runs a SOCKS4 BIND with 8-byte VN 0 replies, and refuses a mismatching peer with 00 5b", () => {
    const waiting = () =>
      new Playbook(noAuth)
        .on(received(FIX.socks4Bind), askAuthSocks4(4, "bob"))
        .on(authDecided(true), askRequest(4, "bind", ipv4("127.0.0.1", 8080)))
        .on(requestDecided(undefined), openBind)
        .on(bindListening("127.0.0.1", 40000), askReplyAt("bind-first", 0, { host: "127.0.0.1", port: 40000 }))
        .on(replyDecided(0, "127.0.0.1", 40000), sendToClient("00 5a 9c 40 7f 00 00 01"));
    waiting()
      .on(bindPeerConnected("127.0.0.1", 50000), askReplyAt("bind-second", 0, { host: "127.0.0.1", port: 50000 }))
      .on(replyDecided(0, "127.0.0.1", 50000), sendToClient("00 5a c3 50 7f 00 00 01"), startRelay());
    waiting()
      .on(bindPeerConnected("10.0.0.9", 50000), reportAnomaly("bind-peer-mismatch"), askReplyAt("bind-second", 0x02, UNSPECIFIED, "DENIED"))
      .on(replyDecided(0x02), sendToClient(socks4Reply(91)), closeClient("request-failed"));
  });

  it("accepts any peer for a SOCKS4a BIND to a name, and records that it could not check", () => {
    new Playbook(noAuth)
      .on(received("04 02 00 50 00 00 00 01 00 61 2e 62 00"), askAuthSocks4("4a", ""))
      .on(authDecided(true), askRequest("4a", "bind", domain("a.b", 80)))
      .on(requestDecided(undefined), openBind)
      .on(bindListening("127.0.0.1", 40000), askReplyAt("bind-first", 0, { host: "127.0.0.1", port: 40000 }))
      .on(replyDecided(0, "127.0.0.1", 40000), sendToClient("00 5a 9c 40 7f 00 00 01"))
      .on(bindPeerConnected("10.0.0.9", 50000), reportAnomaly("bind-domain-unchecked"), askReplyAt("bind-second", 0, { host: "10.0.0.9", port: 50000 }));
  });
});

describe("UDP ASSOCIATE (RFC 1928 §6-7)", () => {
  it("opens a relay with the request's DST as the hint, replies with its address and keeps the TCP connection (scenario 40)", () => {
    const pb = negotiated()
      .on(received(FIX.udpZero), askRequest(5, "udp", ipv4("0.0.0.0", 0)))
      .on(requestDecided(undefined), openUdpRelay(ipv4("0.0.0.0", 0)))
      .phase("udp-opening")
      .on(udpRelayReady("127.0.0.1", 40002), askReplyAt("udp", 0, { host: "127.0.0.1", port: 40002 }))
      .on(replyDecided(0, "127.0.0.1", 40002), sendToClient("05 00 00 01 7f 00 00 01 9c 42"), startUdpRelay)
      .phase("udp-associated");
    expect(pb.machine.wantsClientBytes).toBe(true);
    expect(pb.machine.endsOnClientFin).toBe(true);
  });

  it("passes an explicit DST as the hint (scenario 43)", () => {
    negotiated()
      .on(received("05 03 00 01 7f 00 00 01 d4 31"), askRequest(5, "udp", ipv4("127.0.0.1", 54321)))
      .on(requestDecided({ allow: true }), openUdpRelay(ipv4("127.0.0.1", 54321)));
  });

  it("reports bytes on the control connection once and otherwise ignores them", () => {
    negotiated()
      .on(received(FIX.udpZero), askRequest(5, "udp", ipv4("0.0.0.0", 0)))
      .on(requestDecided(undefined), openUdpRelay(ipv4("0.0.0.0", 0)))
      .on(udpRelayReady("127.0.0.1", 40002), askReplyAt("udp", 0, { host: "127.0.0.1", port: 40002 }))
      .on(replyDecided(0, "127.0.0.1", 40002), sendToClient("05 00 00 01 7f 00 00 01 9c 42"), startUdpRelay)
      .on(received("61 62"), reportAnomaly("udp-control-data"))
      .on(received("63"))
      .phase("udp-associated");
  });

  // RFC 1928 gives the control connection no messages after the request, so anything behind it
  // is the same out-of-spec data whether it came in the request's read or a later one
  // (handshakes are byte streams).
  it("reports bytes pipelined behind the request in the same read like bytes read later", () => {
    negotiated()
      .on(received(cat(FIX.udpZero, hex("61 62"))), askRequest(5, "udp", ipv4("0.0.0.0", 0)))
      .on(requestDecided(undefined), openUdpRelay(ipv4("0.0.0.0", 0)))
      .on(udpRelayReady("127.0.0.1", 40002), askReplyAt("udp", 0, { host: "127.0.0.1", port: 40002 }))
      .on(replyDecided(0, "127.0.0.1", 40002), sendToClient("05 00 00 01 7f 00 00 01 9c 42"), startUdpRelay, reportAnomaly("udp-control-data"))
      .on(received("63"))
      .phase("udp-associated");
  });

  it("fails with a full reply and closes when no relay can be opened", () => {
    negotiated()
      .on(received(FIX.udpZero), askRequest(5, "udp", ipv4("0.0.0.0", 0)))
      .on(requestDecided(undefined), openUdpRelay(ipv4("0.0.0.0", 0)))
      .on(udpRelayFailed("GENERAL_FAILURE", "EMFILE"), askReplyAt("udp", 0x01, UNSPECIFIED, "GENERAL_FAILURE", "EMFILE"))
      .on(replyDecided(0x01), sendToClient(socks5Failure(0x01)), closeClient("request-failed"));
  });

  it("answers a denied UDP ASSOCIATE with its REP", () => {
    negotiated()
      .on(received(FIX.udpZero), askRequest(5, "udp", ipv4("0.0.0.0", 0)))
      .on(requestDecided({ deny: "DENIED" }), askReplyAt("udp", 0x02, UNSPECIFIED, "DENIED"))
      .on(replyDecided(0x02), sendToClient(socks5Failure(0x02)), closeClient("request-failed"));
  });
});

describe("connect results and replies", () => {
  const dialling = () =>
    negotiated()
      .on(received(FIX.connectIPv4), askRequest(5, "connect", ipv4("127.0.0.1", 8080)))
      .on(requestDecided(undefined), openUpstream("127.0.0.1", 8080));

  it.each<[ProtocolErrorCode, string | undefined, number]>([
    ["CONNECTION_REFUSED", "ECONNREFUSED", 0x05],
    ["DNS_FAILED", "ENOTFOUND", 0x04],
    ["HOST_UNREACHABLE", "EHOSTUNREACH", 0x04],
    ["NETWORK_UNREACHABLE", "ENETUNREACH", 0x03],
    ["CONNECT_TIMEOUT", undefined, 0x06],
    ["GENERAL_FAILURE", "EPIPE", 0x01],
  ])("maps UpstreamFailed %s (%s) to AskReply REP %i, then the full failure reply and close", (code, errno, rep) => {
    dialling()
      .on(upstreamFailed(code, errno), askReply(rep, UNSPECIFIED, code, errno))
      .phase("reply-decision")
      .on(replyDecided(rep), sendToClient(socks5Failure(rep)), closeClient("request-failed"))
      .phase("closed");
  });

  it("sends the REP and bound address of ReplyDecided, not of AskReply (a hook may change them)", () => {
    dialling()
      .on(upstreamFailed("CONNECTION_REFUSED", "ECONNREFUSED"), askReply(0x05, UNSPECIFIED, "CONNECTION_REFUSED", "ECONNREFUSED"))
      .on(replyDecided(0x02), sendToClient(socks5Failure(0x02)), closeClient("request-failed"));
    dialling()
      .on(upstreamConnected("127.0.0.1", 54321), askReply(0, BOUND))
      .on(replyDecided(0, "10.9.8.7", 1), sendToClient("05 00 00 01 0a 09 08 07 00 01"), startRelay());
  });

  it("sends a 22-byte reply for an IPv6 bound address and a 10-byte one for IPv4-mapped (scenarios 24, 25)", () => {
    dialling()
      .on(upstreamConnected("2001:db8::1", 443), askReply(0, { host: "2001:db8::1", port: 443 }))
      .on(replyDecided(0, "2001:db8::1", 443), sendToClient(FIX.reply22), startRelay());
    dialling()
      .on(upstreamConnected("::ffff:127.0.0.1", 54321), askReply(0, { host: "::ffff:127.0.0.1", port: 54321 }))
      .on(replyDecided(0, "::ffff:127.0.0.1", 54321), sendToClient(FIX.reply10), startRelay());
  });
});

describe("SOCKS4 and SOCKS4a", () => {
  it("runs a SOCKS4 CONNECT: AskAuth(userid) → AskRequest → dial → 8-byte 00 5a reply with VN 0 (scenario 9)", () => {
    const pb = new Playbook(noAuth).on(received(FIX.socks4Connect), askAuthSocks4(4, "")).phase("auth-decision");
    expect(pb.machine.version).toBe(4);
    pb.on(authDecided(true), askRequest(4, "connect", ipv4("127.0.0.1", 8080)))
      .on(requestDecided(undefined), openUpstream("127.0.0.1", 8080))
      .on(upstreamConnected("127.0.0.1", 54321), askReply(0, BOUND))
      .on(replyDecided(0, "127.0.0.1", 54321), sendToClient(FIX.socks4GrantedBound), startRelay())
      .phase("relaying");
  });

  it("runs a SOCKS4a CONNECT fed one byte at a time (scenario 4, 54)", () => {
    const pb = new Playbook(noAuth).trickle(FIX.socks4aConnectUser, askAuthSocks4("4a", "bob"));
    expect(pb.machine.version).toBe("4a");
    pb.on(authDecided(true), askRequest("4a", "connect", domain("example.com", 80)))
      .on(requestDecided(undefined), openUpstream("example.com", 80))
      .on(upstreamConnected("93.184.216.34", 80), askReply(0, { host: "93.184.216.34", port: 80 }))
      .on(replyDecided(0, "93.184.216.34", 80), sendToClient("00 5a 00 50 5d b8 d8 22"), startRelay());
  });

  it("hands SOCKS4 early data over in StartRelay.early", () => {
    new Playbook(noAuth)
      .on(received(cat(FIX.socks4Connect, FIX.early)), askAuthSocks4(4, ""))
      .on(authDecided(true), askRequest(4, "connect", ipv4("127.0.0.1", 8080)))
      .on(requestDecided(undefined), openUpstream("127.0.0.1", 8080))
      .on(upstreamConnected(BOUND.host, BOUND.port), askReply(0, BOUND))
      .on(replyDecided(0, BOUND.host, BOUND.port), sendToClient(FIX.socks4GrantedBound), startRelay(FIX.early));
  });

  it("answers a failed connect with 00 5b (CD 91, never 92) and closes (scenario 58)", () => {
    new Playbook(noAuth)
      .on(received(hex("04 01 00 09 7f 00 00 01 00")), askAuthSocks4(4, ""))
      .on(authDecided(true), askRequest(4, "connect", ipv4("127.0.0.1", 9)))
      .on(requestDecided(undefined), openUpstream("127.0.0.1", 9))
      .on(upstreamFailed("CONNECTION_REFUSED", "ECONNREFUSED"), askReply(0x05, UNSPECIFIED, "CONNECTION_REFUSED", "ECONNREFUSED"))
      .on(replyDecided(0x05), sendToClient("00 5b 00 00 00 00 00 00"), closeClient("request-failed"))
      .phase("closed");
  });

  it("maps every failure REP to CD 91", () => {
    for (const rep of [1, 2, 3, 4, 5, 6, 7, 8]) {
      new Playbook(noAuth)
        .on(received(FIX.socks4Connect), askAuthSocks4(4, ""))
        .on(authDecided(true), askRequest(4, "connect", ipv4("127.0.0.1", 8080)))
        .on(requestDecided({ deny: rep }), askReply(rep, UNSPECIFIED))
        .on(replyDecided(rep), sendToClient(socks4Reply(91)), closeClient("request-failed"));
    }
  });

  it("refuses a SOCKS4 client the auth decision rejects: 00 5b and close", () => {
    new Playbook(authRequired)
      .on(received(FIX.socks4ConnectUser), askAuthSocks4(4, "bob"))
      .on(authDecided(false), sendToClient(socks4Reply(91)), closeClient("auth-failed"))
      .phase("closed");
  });

  it("treats DSTIP 0.0.0.0 as SOCKS4, not 4a, and fails it with 00 5b (scenario 55)", () => {
    new Playbook(noAuth)
      .on(received(FIX.socks4ZeroIp), askAuthSocks4(4, ""))
      .on(authDecided(true), askRequest(4, "connect", ipv4("0.0.0.0", 80)))
      .on(requestDecided(undefined), reportAnomaly("bad-destination"), askReply(0x04, UNSPECIFIED, "BAD_DESTINATION"))
      .on(replyDecided(0x04), sendToClient("00 5b 00 00 00 00 00 00"), closeClient("request-failed"));
  });

  it("fails a 4a request with an empty hostname with 00 5b and relays nothing after it (scenario 56)", () => {
    const t = drive(noAuth, [FIX.socks4aDoubleNul]);
    expect(t.commands).toEqual([
      askAuthSocks4("4a", ""),
      askRequest("4a", "connect", domain("", 80)),
      reportAnomaly("bad-destination"),
      askReply(0x04, UNSPECIFIED, "BAD_DESTINATION"),
      sendToClient("00 5b 00 00 00 00 00 00"),
      closeClient("request-failed"),
    ]);
    expect(t.relayed.length).toBe(0);
  });

  it("closes with 00 5b once a USERID passes 255 bytes without NUL (scenario 57)", () => {
    const pb = new Playbook(noAuth).on(received(cat(hex("04 01 00 50 7f 00 00 01"), repeat(0x41, 255))));
    pb.on(received("41"), reportAnomaly("field-too-long"), askReply(0x01, UNSPECIFIED, "FIELD_TOO_LONG"))
      .on(replyDecided(0x01), sendToClient(socks4Reply(91)), closeClient("protocol-error"))
      .phase("closed");
  });

  it("closes with 00 5b on an unterminated 4a hostname of 2 000 bytes", () => {
    const t = drive(noAuth, [cat(hex("04 01 00 50 00 00 00 01 00"), repeat(0x62, 2000))]);
    expect(t.commands).toEqual([
      reportAnomaly("field-too-long"),
      askReply(0x01, UNSPECIFIED, "FIELD_TOO_LONG"),
      sendToClient(socks4Reply(91)),
      closeClient("protocol-error"),
    ]);
  });

  it("answers an unknown SOCKS4 CD with 00 5b and closes", () => {
    new Playbook(noAuth)
      .on(received("04 03 00 50 7f 00 00 01 00"), reportAnomaly("unknown-command"), askReply(0x07, UNSPECIFIED, "UNKNOWN_COMMAND"))
      .on(replyDecided(0x07), sendToClient(socks4Reply(91)), closeClient("protocol-error"));
  });

  it("sends zeros for an IPv6 bound address in a SOCKS4 reply (SOCKS4 carries only IPv4)", () => {
    new Playbook(noAuth)
      .on(received(FIX.socks4Connect), askAuthSocks4(4, ""))
      .on(authDecided(true), askRequest(4, "connect", ipv4("127.0.0.1", 8080)))
      .on(requestDecided(undefined), openUpstream("127.0.0.1", 8080))
      .on(upstreamConnected("::1", 40000), askReply(0, { host: "::1", port: 40000 }))
      .on(replyDecided(0, "::1", 40000), sendToClient("00 5a 9c 40 00 00 00 00"), startRelay());
  });
});

describe("not SOCKS", () => {
  it.each([
    ["GET / (47 …)", "47 45 54 20 2f", "474554202f"],
    ["SOCKS6 (06 …)", "06 01 00", "060100"],
    ["a NUL byte", "00", "00"],
  ])("records the first bytes and closes without sending anything: %s (scenario 10)", (_, bytes, shown) => {
    const pb = new Playbook(noAuth);
    const out = pb.machine.handle(received(bytes));
    expect(out).toEqual([reportAnomaly("not-socks"), closeClient("protocol-error")]);
    expect(out.some((c) => c.type === "SendToClient")).toBe(false);
    expect(out[0]?.type === "ReportAnomaly" && out[0].detail).toContain(shown);
    pb.phase("closed").on(received("05 01 00")).phase("closed");
  });
});

describe("driver contract", () => {
  it("throws on an event the current phase cannot receive (a driver bug)", () => {
    expect(() => new SessionMachine(noAuth).handle(authDecided(true))).toThrow(/AuthDecided in phase version/);
    const pb = negotiated();
    expect(() => pb.machine.handle(upstreamConnected("127.0.0.1", 1))).toThrow(/UpstreamConnected in phase request/);
    expect(() => pb.machine.handle(replyDecided(0))).toThrow(/ReplyDecided/);
  });

  it("ignores an empty read", () => {
    new Playbook(noAuth)
      .on(received(""))
      .phase("version")
      .on(received(FIX.greetingNoAuth), askAuthNone([0]));
  });

  it("is deaf after it closed: later reads produce nothing", () => {
    const pb = new Playbook(authRequired).on(received(FIX.greetingNoAuth), reportAuthRefused([0]), sendToClient("05 ff"), closeClient("auth-failed"));
    for (const chunk of [FIX.greetingUserPass, FIX.userPass, FIX.connectIPv4, hex("47")]) pb.on(received(chunk));
    pb.phase("closed");
    expect(pb.machine.wantsClientBytes).toBe(false);
    expect(pb.machine.readingHandshake).toBe(false);
  });
});

describe("chunking: the same transcript however the client's bytes are cut", () => {
  const cases: Array<[string, { authRequired: boolean }, Buffer]> = [
    ["SOCKS5 no-auth CONNECT IPv4 + early data", noAuth, cat(FIX.greetingNoAuth, FIX.connectIPv4, FIX.early)],
    ["SOCKS5 no-auth CONNECT domain", noAuth, cat(FIX.greetingNoAuthAndUserPass, FIX.connectDomain)],
    ["SOCKS5 no-auth CONNECT IPv6 + early data", noAuth, cat(FIX.greetingNoAuth, FIX.connectIPv6, FIX.early)],
    ["SOCKS5 user/pass + CONNECT + early data (scenario 3)", authRequired, cat(FIX.greetingUserPass, FIX.userPass, FIX.connectIPv4, FIX.early)],
    ["SOCKS5 RSV 01", noAuth, cat(FIX.greetingNoAuth, FIX.connectRsv1)],
    ["SOCKS5 unknown CMD", noAuth, cat(FIX.greetingNoAuth, FIX.unknownCommand)],
    ["SOCKS5 unknown ATYP", noAuth, cat(FIX.greetingNoAuth, FIX.unknownAtyp)],
    ["SOCKS5 bad credentials version", authRequired, cat(FIX.greetingUserPass, FIX.userPassVersion5)],
    ["SOCKS4 CONNECT + early data", noAuth, cat(FIX.socks4ConnectUser, FIX.early)],
    ["SOCKS4a CONNECT + early data", noAuth, cat(FIX.socks4aConnectUser, FIX.early)],
    ["SOCKS4a empty hostname (scenario 56)", noAuth, FIX.socks4aDoubleNul],
    ["SOCKS5 BIND + early data", noAuth, cat(FIX.greetingNoAuth, FIX.bindIPv4, FIX.early)],
    ["SOCKS4 BIND + early data", noAuth, cat(FIX.socks4Bind, FIX.early)],
    // The RFC gives a UDP control connection no further messages; whether bytes behind the
    // request are reported must not depend on whether they came in the request's read.
    ["SOCKS5 UDP ASSOCIATE + bytes on the control connection", noAuth, cat(FIX.greetingNoAuth, FIX.udpZero, FIX.early)],
  ];

  it.each(cases)("%s", (_, options, bytes) => {
    const reference = drive(options, [bytes]);
    const want = transcriptFingerprint(reference);
    for (const { label, chunks } of chunkings(bytes)) {
      expect(transcriptFingerprint(drive(options, chunks)), label).toBe(want);
    }
  });

  it("the reference transcripts end the way the protocol says", () => {
    const last = (t: { commands: SessionCommand[] }) => t.commands.at(-1)?.type;
    expect(last(drive(noAuth, [cases[0]![2]]))).toBe("StartRelay");
    expect(drive(noAuth, [cases[0]![2]]).relayed).toEqual(FIX.early);
    expect(last(drive(noAuth, [cases[5]![2]]))).toBe("CloseClient");
    expect(drive(authRequired, [cases[3]![2]]).relayed).toEqual(FIX.early);
    expect(drive(noAuth, [cases[9]![2]]).relayed).toEqual(FIX.early);
  });

  it("property: random cut points of a pipelined handshake never change the transcript", () => {
    // The UDP case is left to its exhaustive test above.
    const handshakes = cases.filter(([name]) => !name.includes("UDP")).map(([, options, bytes]) => ({ options, bytes }));
    fc.assert(
      fc.property(fc.constantFrom(...handshakes), fc.uniqueArray(fc.nat({ max: 80 }), { maxLength: 12 }), ({ options, bytes }, cuts) => {
        const points = [...new Set(cuts.filter((c) => c > 0 && c < bytes.length))].sort((a, b) => a - b);
        const chunks = [0, ...points].map((start, i) => bytes.subarray(start, points[i] ?? bytes.length));
        expect(transcriptFingerprint(drive(options, chunks))).toBe(transcriptFingerprint(drive(options, [bytes])));
      }),
      { numRuns: 150 },
    );
  });
});

describe("fuzz: arbitrary bytes never throw", () => {
  const valid = [
    cat(FIX.greetingNoAuth, FIX.connectIPv4),
    cat(FIX.greetingNoAuthAndUserPass, FIX.userPass, FIX.connectDomain),
    cat(FIX.greetingUserPass, FIX.userPass, FIX.connectIPv6),
    FIX.socks4ConnectUser,
    FIX.socks4aConnectUser,
    cat(FIX.greetingNoAuth, FIX.bindIPv4),
    cat(FIX.greetingNoAuth, FIX.udpZero),
    FIX.socks4Bind,
  ];
  /** Noise, or a real handshake with some bytes overwritten and noise behind it. */
  const input = fc.oneof(
    fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }),
    fc
      .tuple(
        fc.constantFrom(...valid),
        fc.array(fc.tuple(fc.nat({ max: 40 }), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
        fc.uint8Array({ maxLength: 64 }),
        fc.array(fc.nat({ max: 60 }), { maxLength: 6 }),
      )
      .map(([base, edits, tail, cuts]) => {
        const bytes = cat(base, tail);
        for (const [at, value] of edits) if (at < bytes.length) bytes[at] = value;
        const points = [...new Set(cuts.filter((c) => c > 0 && c < bytes.length))].sort((a, b) => a - b);
        return [0, ...points].map((start, i) => bytes.subarray(start, points[i] ?? bytes.length));
      }),
  );
  const upstream = fc.constantFrom<Parameters<typeof drive>[2]>(
    {},
    { upstream: { error: "CONNECTION_REFUSED", errno: "ECONNREFUSED" } },
    { decision: { deny: "DENIED" } },
    { decision: { redirect: { port: 0 } } },
    { bindPeer: { host: "10.0.0.9", port: 1 }, udp: { error: "GENERAL_FAILURE" } },
    { bind: { error: "GENERAL_FAILURE" } },
  );

  it("driven with answers to every question: never throws, ends once, sends whole messages, stays closed", () => {
    fc.assert(
      fc.property(fc.boolean(), input, upstream, (required, chunks, answers) => {
        const t = drive({ authRequired: required }, chunks, answers);
        const terminal = t.commands.filter((c) => c.type === "CloseClient" || c.type === "StartRelay" || c.type === "StartUdpRelay");
        // At most one way out, and it is the last command (a UDP association may still report
        // control-connection bytes).
        expect(terminal.length).toBeLessThanOrEqual(1);
        const after = terminal.length === 1 ? t.commands.slice(t.commands.indexOf(terminal[0]!) + 1) : [];
        expect(after.every((c) => c.type === "ReportAnomaly" && c.code === "udp-control-data" && terminal[0]?.type === "StartUdpRelay")).toBe(true);
        // Every byte sent is a whole, well-formed server message.
        for (const c of t.commands) {
          if (c.type !== "SendToClient") continue;
          const b = c.bytes;
          if (b.length === 2) expect([0x01, 0x05]).toContain(b[0]);
          else if (b.length === 8) expect(decodeSocks4Reply(b)).toMatchObject({ kind: "ok", used: 8 });
          else expect(decodeReply(b)).toMatchObject({ kind: "ok", used: b.length });
        }
        // Nothing leaves closed.
        if (t.machine.phase.name === "closed") {
          expect(t.machine.handle(received(FIX.greetingNoAuth))).toEqual([]);
          expect(t.machine.phase.name).toBe("closed");
        }
      }),
      { numRuns: 300 },
    );
  });

  it("unanswered: reads while a question is pending produce nothing and never throw", () => {
    fc.assert(
      fc.property(fc.boolean(), input, (required, chunks) => {
        const m = new SessionMachine({ authRequired: required });
        for (const chunk of chunks) {
          const waiting = !m.wantsClientBytes;
          const out = m.handle(received(chunk));
          if (waiting) expect(out).toEqual([]);
          const asks = out.filter((c) => c.type.startsWith("Ask"));
          expect(asks.length).toBeLessThanOrEqual(1);
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe("serve (a hook answers a CONNECT itself)", () => {
  it("replies success with 0.0.0.0:0 and starts a relay without opening an upstream", () => {
    negotiated()
      .on(received(FIX.connectIPv4), askRequest(5, "connect", ipv4("127.0.0.1", 8080)))
      .on(requestDecided({ serve: true }), askReply(0, UNSPECIFIED))
      .on(replyDecided(0), sendToClient(socks5Failure(0)), startRelay());
  });

  it("refuses serve for BIND with REP 07", () => {
    negotiated()
      .on(received("05 02 00 01 7f 00 00 01 00 00"), askRequest(5, "bind", ipv4("127.0.0.1", 0)))
      .on(requestDecided({ serve: true }), askReplyAt("bind-first", 0x07, UNSPECIFIED, "UNKNOWN_COMMAND"));
  });
});
