/**
 * Username/password sub-negotiation (RFC 1929). UNAME and PASSWD are octets with no defined
 * encoding, so they stay bytes; ULEN/PLEN 0 is out of spec but common and is accepted here
 * (the policy decides what an empty name means).
 */
import { hex } from "./address.js";
import { NEED_MORE, fail, ok, type Decoded } from "./result.js";

export const USERPASS_VERSION = 0x01;
export const USERPASS_SUCCESS = 0x00;
export const USERPASS_FAILURE = 0x01;

/** VER ULEN UNAME PLEN PASSWD. */
export interface UserPassRequest {
  readonly user: Buffer;
  readonly password: Buffer;
}

/**
 *   +----+------+----------+------+----------+
 *   |VER | ULEN |  UNAME   | PLEN |  PASSWD  |
 *   | 1  |  1   | 1 to 255 |  1   | 1 to 255 |
 */
export function decodeUserPass(bytes: Uint8Array): Decoded<UserPassRequest> {
  if (bytes.length < 1) return NEED_MORE;
  if (bytes[0] !== USERPASS_VERSION) {
    return fail("BAD_AUTH_VERSION", `username/password version 0x${hex(bytes[0]!)} (RFC 1929 wants 0x01)`);
  }
  if (bytes.length < 2) return NEED_MORE;
  const ulen = bytes[1]!;
  if (bytes.length < 2 + ulen + 1) return NEED_MORE;
  const plen = bytes[2 + ulen]!;
  const used = 3 + ulen + plen;
  if (bytes.length < used) return NEED_MORE;
  const user = Buffer.from(bytes.subarray(2, 2 + ulen));
  const password = Buffer.from(bytes.subarray(3 + ulen, used));
  return ok({ user, password }, used);
}

export function encodeUserPass(request: UserPassRequest): Buffer {
  const { user, password } = request;
  return Buffer.concat([Buffer.from([USERPASS_VERSION, user.length]), user, Buffer.from([password.length]), password]);
}

/** VER STATUS: 0x00 success, anything else failure (and the server closes). */
export function encodeUserPassStatus(status: number): Buffer {
  return Buffer.from([USERPASS_VERSION, status]);
}

export function decodeUserPassStatus(bytes: Uint8Array): Decoded<number> {
  if (bytes.length < 1) return NEED_MORE;
  if (bytes[0] !== USERPASS_VERSION) return fail("BAD_AUTH_VERSION", `status version 0x${hex(bytes[0]!)}`);
  if (bytes.length < 2) return NEED_MORE;
  return ok(bytes[1]!, 2);
}
