/**
 * Loads the TUI module (and Ink with it) on demand.
 *
 * Ink decides once, when it is first imported, whether it runs "in CI" (the CI or
 * CONTINUOUS_INTEGRATION variable is set) and then draws nothing until it exits. socksmith only
 * opens the TUI once it has seen a terminal on stdin and stdout, so that guess is wrong here: a
 * developer's shell or a container that exports CI=true would get a blank screen. The variables
 * are hidden while the module loads and put back afterwards, for child processes and addons.
 */
const CI_VARIABLES = ["CI", "CONTINUOUS_INTEGRATION"] as const;

export async function loadTui(): Promise<typeof import("./tui-runner.js")> {
  const saved = CI_VARIABLES.map((name) => [name, process.env[name]] as const);
  for (const [name] of saved) delete process.env[name];
  try {
    return await import("./tui-runner.js");
  } finally {
    for (const [name, value] of saved) if (value !== undefined) process.env[name] = value;
  }
}
