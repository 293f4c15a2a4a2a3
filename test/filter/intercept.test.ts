// compileInterceptFilter: which items of sessions in progress an intercept filter holds.
import { describe, expect, it } from "vitest";
import { compileInterceptFilter, parseInterceptFilter, type InterceptCandidate, type Stage } from "../../src/filter/index.js";
import { sessionRowOf, tlsRowOf } from "../../src/filter/session-row-of.js";

const text = (s: string): Uint8Array => Buffer.from(s, "latin1");

/** What is known of a CONNECT at its request. */
const example = sessionRowOf({
  opened_at: 1000,
  version: "5",
  command: "connect",
  requested_type: "domain",
  requested_host: "example.com",
  requested_port: 443,
  client_host: "127.0.0.1",
  client_port: 50000,
});
const other = sessionRowOf({ ...example, requested_host: "other.org", requested_port: 80, client_port: 50001 });
const exampleTls = tlsRowOf({ intercepted: 1, sni: "api.example.com", alpn_offered: '["h2"]' });

/** Each session's four items; `label` is row/stage. */
function items(label: string, row: InterceptCandidate["row"], tls?: InterceptCandidate["tls"]): (InterceptCandidate & { label: string })[] {
  const base = { row, now: 4000, ...(tls === undefined ? {} : { tls }) };
  return [
    // A payload given at the request is ignored: a request has no bytes of its own.
    { label: `${label}/request`, stage: "request", payload: text("GET smuggled"), ...base },
    { label: `${label}/up`, stage: "up", payload: text("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"), ...base },
    { label: `${label}/down`, stage: "down", payload: text("HTTP/1.1 200 OK\r\n\r\n\x00\xff"), ...base },
    { label: `${label}/datagram`, stage: "datagram", payload: text("\x12\x34 dns query"), ...base },
  ];
}

const ITEMS = [...items("example", example, exampleTls), ...items("other", other)];
const ALL = ITEMS.map((i) => i.label);
const ofStages = (row: string, ...stages: Stage[]) => stages.map((s) => `${row}/${s}`);

/** [filter, the items it holds] */
const TABLE: readonly (readonly [string, readonly string[]])[] = [
  ["", ALL],
  // No stage term: every stage of the sessions the filter picks.
  ["host:example.com", ofStages("example", "request", "up", "down", "datagram")],
  ["port:80", ofStages("other", "request", "up", "down", "datagram")],
  // Stage terms pick the items.
  ["host:example.com & stage:request", ofStages("example", "request")],
  ["host:example.com stage:up", ofStages("example", "up")],
  ["stage:down", [...ofStages("example", "down"), ...ofStages("other", "down")]],
  ["stage:datagram port:443", ofStages("example", "datagram")],
  ["stage:up|down", [...ofStages("example", "up", "down"), ...ofStages("other", "up", "down")]],
  ["!stage:up", [...ofStages("example", "request", "down", "datagram"), ...ofStages("other", "request", "down", "datagram")]],
  ["!(stage:up | stage:down) port:80", ofStages("other", "request", "datagram")],
  ["stage:request | host:other.org", [...ofStages("example", "request"), ...ofStages("other", "request", "up", "down", "datagram")]],
  ["stage:up stage:down", []],
  // The tls row, when given.
  ["tls", ofStages("example", "request", "up", "down", "datagram")],
  ["tls:intercepted stage:down", ofStages("example", "down")],
  ["!tls stage:request", ofStages("other", "request")],
  ["sni:api.* stage:up", ofStages("example", "up")],
  ["alpn:h2 stage:request", ofStages("example", "request")],
  // Other terms read the row as known; what is not known yet does not match.
  ["cmd:connect v:5 client:127.0.0.1 stage:request", [...ofStages("example", "request"), ...ofStages("other", "request")]],
  ["dur>=3s stage:request", [...ofStages("example", "request"), ...ofStages("other", "request")]],
  ["dur>3s stage:request", []],
  ["status:ok", []],
  // `~` reads the item's own bytes: a chunk's or a datagram's, never at the request.
  ["~GET", [...ofStages("example", "up"), ...ofStages("other", "up")]],
  ["~GET stage:down", []],
  ['~i"http/1.1 200" host:example.com', ofStages("example", "down")],
  ['~"\\x00\\xff"', [...ofStages("example", "down"), ...ofStages("other", "down")]],
  ["~dns stage:datagram", [...ofStages("example", "datagram"), ...ofStages("other", "datagram")]],
  ["!~GET port:443", ofStages("example", "request", "down", "datagram")],
];

describe("compileInterceptFilter", () => {
  it.each(TABLE)("%j holds %j", (filter, held) => {
    const pauses = compileInterceptFilter(parseInterceptFilter(filter));
    expect(ITEMS.filter((item) => pauses(item)).map((item) => item.label)).toEqual(held);
  });

  it("reads `~` terms as false on a chunk given without its bytes", () => {
    const pauses = compileInterceptFilter(parseInterceptFilter("~GET"));
    expect(pauses({ stage: "up", row: example })).toBe(false);
    expect(compileInterceptFilter(parseInterceptFilter("!~GET"))({ stage: "up", row: example })).toBe(true);
  });

  it("counts a candidate without a tls row as having none", () => {
    expect(compileInterceptFilter(parseInterceptFilter("tls"))({ stage: "request", row: example })).toBe(false);
    expect(compileInterceptFilter(parseInterceptFilter("sni:api.*"))({ stage: "request", row: example })).toBe(false);
  });

  it("measures dur to the time of the call when the candidate gives none", () => {
    const row = sessionRowOf({ ...example, opened_at: Date.now() - 60_000 });
    expect(compileInterceptFilter(parseInterceptFilter("dur>30s"))({ stage: "request", row })).toBe(true);
    expect(compileInterceptFilter(parseInterceptFilter("dur>2m"))({ stage: "request", row })).toBe(false);
  });

  it("is compiled once and answers each item on its own", () => {
    const pauses = compileInterceptFilter(parseInterceptFilter("stage:down ~OK"));
    const answers = [
      pauses({ stage: "down", row: other, payload: text("200 OK") }),
      pauses({ stage: "down", row: other, payload: text("404 Not Found") }),
      pauses({ stage: "up", row: other, payload: text("OK") }),
      pauses({ stage: "down", row: other, payload: text("OK again") }),
    ];
    expect(answers).toEqual([true, false, false, true]);
  });
});
