/** The SSH identification string detector (RFC 4253 §4.2). */
import { describe, expect, it } from "vitest";
import { detectProtocol, SSH_BANNER_MAX, type Detection } from "../../src/detect/index.js";
import { expectPrefixes, expectSniffed } from "./fixtures.js";

const bytes = (text: string) => Buffer.from(text, "latin1");
const UNKNOWN: Detection = { kind: "unknown" };

describe("SSH banners", () => {
  it.each([
    ["SSH-2.0-OpenSSH_9.6\r\n", "SSH-2.0-OpenSSH_9.6"],
    ["SSH-2.0-PuTTY_Release_0.80\r\n", "SSH-2.0-PuTTY_Release_0.80"],
    ["SSH-1.99-Cisco-1.25\r\n", "SSH-1.99-Cisco-1.25"],
    ["SSH-2.0-billsSSH_3.6.3q3 comments here\r\n", "SSH-2.0-billsSSH_3.6.3q3 comments here"],
    ["SSH-2.0-Go\n", "SSH-2.0-Go"],
  ])("%j", (text, banner) => {
    const b = bytes(text);
    expectPrefixes(b, { kind: "ssh", banner }, b.length);
    expectSniffed(b, { kind: "ssh", banner });
  });

  it("the longest allowed: 255 bytes with CR LF; one more is unknown as soon as it is too long", () => {
    const ok = bytes(`SSH-2.0-${"a".repeat(SSH_BANNER_MAX - 10)}\r\n`);
    expect(ok.length).toBe(255);
    expect(detectProtocol(ok)).toEqual({ kind: "ssh", banner: ok.subarray(0, 253).toString("latin1") });
    const long = bytes(`SSH-2.0-${"a".repeat(SSH_BANNER_MAX - 9)}\r\n`);
    // Byte 255 (index 254) must be the LF; here it is the CR.
    expectPrefixes(long, UNKNOWN, 255);
    expect(detectProtocol(bytes(`SSH-2.0-${"a".repeat(SSH_BANNER_MAX - 9)}\n`))).toMatchObject({ kind: "ssh" });
  });

  it.each([
    ["SSH-1.5 (SSH1 only)", "SSH-1.5-x\r\n", 7],
    ["SSH-2.1", "SSH-2.1-x\r\n", 7],
    ["lowercase", "ssh-2.0-x\r\n", 1],
    ["empty softwareversion", "SSH-2.0-\r\n", 10],
    ["a space for a softwareversion", "SSH-2.0- x\r\n", 9],
    ["a control byte", "SSH-2.0-x\x1b", 10],
    ["a non-ASCII byte", "SSH-2.0-x\xe9", 10],
    ["CR not followed by LF", "SSH-2.0-x\rx", 11],
  ])("%s is unknown", (_name, text, decidedAt) => {
    expectPrefixes(bytes(text), UNKNOWN, decidedAt);
  });
});
