/** `socksmith sessions [FILE]`: list captured sessions as a table (newest at the bottom) or JSON. */
import { Command } from "commander";
import { formatEndpoint } from "../../engine/index.js";
import type { SessionRow } from "../../store/schema.js";
import { sessionJson } from "../../store/json.js";
import { formatBytes, formatDuration, formatReply, formatTarget, formatTime } from "../../format/index.js";
import { clean, filterOption, openReader } from "../capture-file.js";
import { parseCount } from "../options.js";
import type { Terminal } from "../proxy.js";

interface RawOptions {
  filter?: string;
  json?: boolean;
  limit: string;
  all?: boolean;
}

export function sessionsCommand(terminal: Terminal): Command {
  return new Command("sessions")
    .description("list captured sessions (the newest last)")
    .argument("[file]", "capture file", "socksmith.db")
    .option("-f, --filter <expr>", 'only sessions matching a filter, e.g. "host:*.example.com status:failed"')
    .option("-n, --limit <n>", "show the newest N sessions", "50")
    .option("-a, --all", "show every matching session")
    .option("--json", "print a JSON array instead of a table")
    .action((file: string, raw: RawOptions) => {
      const filter = filterOption(raw.filter);
      const limit = raw.all === true ? Number.MAX_SAFE_INTEGER : parseCount(raw.limit, "--limit", 1);
      const reader = openReader(file);
      try {
        const query = filter === undefined ? {} : { filter };
        const rows = reader.sessions({ ...query, limit }).reverse();
        if (raw.json === true) {
          terminal.out(
            JSON.stringify(
              rows.map((s) => sessionJson(s, reader.tls(s.id) ?? null)),
              null,
              2,
            ),
          );
          return;
        }
        const total = reader.count(query);
        if (rows.length === 0) {
          terminal.err(total === 0 && filter === undefined ? `${file}: no sessions yet` : "no sessions match");
          return;
        }
        for (const line of sessionTable(rows, Date.now())) terminal.out(line);
        if (total > rows.length) terminal.err(`(${rows.length} of ${total}; --all or -n N for more)`);
      } finally {
        reader.close();
      }
    });
}

const HEADER = ["ID", "TIME", "CLIENT", "V", "CMD", "TARGET", "REPLY", "STATUS", "UP", "DOWN", "DUR", "PROTO", "TAGS"];

/** One aligned line per session, with a header. */
export function sessionTable(rows: readonly SessionRow[], now: number): string[] {
  const cells = rows.map((s) =>
    [
      String(s.id),
      formatTime(s.opened_at),
      `${formatEndpoint({ host: s.client_host, port: s.client_port })}`,
      s.version ?? "-",
      s.command ?? "-",
      formatTarget(s),
      s.reply === null ? "-" : formatReply(s.reply, s.version),
      s.status === "ok" || s.status === "open" ? s.status : `${s.status}${s.close_reason !== null && s.status !== "denied" ? ` (${s.close_reason})` : ""}`,
      formatBytes(s.bytes_up_received),
      formatBytes(s.bytes_down_received),
      formatDuration((s.closed_at ?? now) - s.opened_at),
      s.protocol === null ? "" : s.sni === null ? s.protocol : `${s.protocol} ${s.sni}`,
      tags(s.tags),
    ].map(clean),
  );
  const all = [HEADER, ...cells];
  const widths = HEADER.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  return all.map((r) =>
    r
      .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd(),
  );
}

function tags(json: string): string {
  try {
    return Object.entries(JSON.parse(json) as Record<string, string>)
      .map(([k, v]) => `${k}=${v}`)
      .join(" ");
  } catch {
    return "";
  }
}
