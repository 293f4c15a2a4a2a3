/** Where the socksmith CA lives by default; apart from ca.ts so that reading it loads no X.509 code. */
import { homedir } from "node:os";
import { isAbsolute, join } from "node:path";

/** `$XDG_CONFIG_HOME/socksmith` when XDG_CONFIG_HOME is set (and absolute, as the XDG spec requires), else `~/.socksmith`. */
export function defaultCaDir(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  const xdg = env.XDG_CONFIG_HOME;
  if (xdg !== undefined && xdg !== "" && isAbsolute(xdg)) return join(xdg, "socksmith");
  return join(home, ".socksmith");
}
