/**
 * Which columns of `sessions` (and of a session's `tls` row) each term reads: the one table `toSql`
 * and `toPredicate` share, so the two cannot disagree about where to look.
 */
import type { SessionRow, TlsRow } from "../model/capture-rows.js";
import type { CidrField, EnumTerm, GlobField, RangeField } from "./ast.js";

type ColumnOf<T> = { [K in keyof SessionRow]-?: SessionRow[K] extends T ? K : never }[keyof SessionRow];
export type TextColumn = ColumnOf<string | null>;
export type NumberColumn = ColumnOf<number | null>;

/** A glob matches when any of its columns matches. */
export const GLOB_COLUMNS: Readonly<Record<GlobField, readonly TextColumn[]>> = {
  host: ["requested_host", "target_host"],
  user: ["user"],
  sni: ["sni"],
  reason: ["close_reason"],
};

/** Glob fields that also look in the session's `tls` row (SQL: a scalar subquery; null without a row). */
export const TLS_GLOB_COLUMNS: Readonly<Partial<Record<GlobField, keyof TlsRow>>> = {
  sni: "sni",
};

/** A range matches when any of its columns holds an IP inside it; remote_host only counts here. */
export const CIDR_COLUMNS: Readonly<Record<CidrField, readonly TextColumn[]>> = {
  host: ["requested_host", "target_host", "remote_host"],
  client: ["client_host"],
};

export const RANGE_COLUMNS: Readonly<Record<RangeField, readonly NumberColumn[]>> = {
  port: ["requested_port", "target_port"],
  id: ["id"],
  rep: ["reply"],
};

export const ENUM_COLUMNS: Readonly<Record<EnumTerm["field"], TextColumn>> = {
  cmd: "command",
  v: "version",
  status: "status",
  proto: "protocol",
};

/** `via:` reads the session's upstream hops here (JSON array; null when direct). */
export const VIA_COLUMN = "route" satisfies TextColumn;

/** Columns declared NOT NULL: their SQL needs no null guard (and `status` keeps its index). */
export const NOT_NULL: ReadonlySet<keyof SessionRow> = new Set(["id", "status"]);
