/**
 * The outcome of every decoder (docs/architecture.md, "Conventions"): more bytes are needed, a value and the number of
 * bytes it used, or a coded error. Decoders never throw on hostile input.
 */
import { protocolError, type ProtocolError, type ProtocolErrorCode } from "../errors.js";

export type Decoded<T> =
  | { readonly kind: "need-more" }
  | { readonly kind: "ok"; readonly value: T; readonly used: number }
  | { readonly kind: "error"; readonly error: ProtocolError };

export const NEED_MORE: Decoded<never> = Object.freeze({ kind: "need-more" });

export function ok<T>(value: T, used: number): Decoded<T> {
  return { kind: "ok", value, used };
}

export function fail(code: ProtocolErrorCode, message: string): Decoded<never> {
  return { kind: "error", error: protocolError(code, message) };
}
