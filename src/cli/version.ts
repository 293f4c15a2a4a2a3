/** The version socksmith reports (`--version`) and records in capture files. */
export const VERSION = "0.1.0";
