/**
 * The one runtime list of hook names (`api.ts` stays types-only). The compiler keeps it exactly
 * `HookName`: `satisfies` refuses a name that is no hook, `Complete` one that is missing; a test
 * checks there are no repeats. No imports with side effects (the watchdog worker may bundle it).
 */
import type { HookName } from "./api.js";

/** Every hook, in the order `api.ts` declares them (also the watchdog's hook codes). */
export const HOOK_NAMES = [
  "onLoad",
  "onDispose",
  "onOpen",
  "onAuth",
  "onRequest",
  "onReply",
  "onTlsClientHello",
  "onData",
  "onDatagram",
  "onClose",
] as const satisfies readonly HookName[];

/** `true` only while HOOK_NAMES lists every HookName; the assignment below fails to compile otherwise. */
type Complete = [Exclude<HookName, (typeof HOOK_NAMES)[number]>] extends [never] ? true : false;
const complete: Complete = true;
void complete;

const NAMES: ReadonlySet<string> = new Set(HOOK_NAMES);

/** Whether `key` is a hook's name, exactly (case and all). */
export function isHookName(key: string): key is HookName {
  return NAMES.has(key);
}

/** A record with one entry per hook, `value(hook)` each, in HOOK_NAMES order. */
export function perHook<T>(value: (hook: HookName) => T): { readonly [K in HookName]: T } {
  // Exact because HOOK_NAMES is (checked above): every key present, no other.
  return Object.fromEntries(HOOK_NAMES.map((hook) => [hook, value(hook)])) as { readonly [K in HookName]: T };
}
