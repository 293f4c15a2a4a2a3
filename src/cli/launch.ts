/**
 * dist/cli.js, the `socksmith` binary: sets the process up before anything else loads, then
 * loads the CLI (dist/socksmith.js).
 *
 * - NODE_ENV: React (under Ink) reads it when it is first imported, and its development build
 *   renders several times slower. Static imports would run before any statement, hence the
 *   dynamic import below.
 * - The young generation is held at V8's starting size (launch-heap.ts; `run` lets it grow unless it
 *   intercepts TLS) unless a semi-space size was chosen on the command line or in NODE_OPTIONS.
 */
import { holdYoungGeneration, semiSpaceChosen } from "./launch-heap.js";

process.env.NODE_ENV ??= "production";
if (!semiSpaceChosen(process.execArgv, process.env.NODE_OPTIONS)) holdYoungGeneration();
// A variable, so that the bundler leaves the CLI's own bundle to be loaded at run time.
const cli = "./socksmith.js";
await import(cli);
