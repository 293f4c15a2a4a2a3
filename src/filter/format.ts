/**
 * A filter tree back to text, in one canonical spelling: every term with its field
 * (`host:*word*` for a bare word), alternatives as `|` operators, parentheses only where
 * precedence or nesting needs them, values quoted only when they must be, amounts in the largest
 * whole unit. `parseFilter(formatFilter(f))` deep-equals `f` for every tree `parseFilter` returns (and
 * `parseInterceptFilter` for every tree it returns).
 */
import { assertNever } from "../lang/assert-never.js";
import type { Filter } from "./ast.js";

export function formatFilter(filter: Filter): string {
  return write(filter, 0, undefined);
}

/**
 * `formatFilter`'s text, and the 1-based column at which `node` (a node of `filter`, by identity)
 * starts in it; undefined when the tree does not hold it. For errors on trees that were not parsed
 * from text, so that a caret can still point at the term.
 */
export function formatFilterLocating(filter: Filter, node: Filter): { readonly text: string; readonly column: number | undefined } {
  let column: number | undefined;
  const text = write(filter, 0, (n, offset) => {
    if (n === node && column === undefined) column = offset + 1;
  });
  return { text, column };
}

/** The text of `filter`, which starts at `offset` of the whole; `visit` sees each node and where it starts. */
function write(filter: Filter, offset: number, visit: ((node: Filter, offset: number) => void) | undefined): string {
  visit?.(filter, offset);
  const join = (operands: readonly Filter[], separator: string, parenthesise: (o: Filter) => boolean): string => {
    let text = "";
    operands.forEach((operand, i) => {
      if (i > 0) text += separator;
      const parens = parenthesise(operand);
      if (parens) text += "(";
      text += write(operand, offset + text.length, visit);
      if (parens) text += ")";
    });
    return text;
  };
  switch (filter.kind) {
    case "all":
      return "";
    case "and":
      return join(filter.operands, " ", (o) => o.kind === "and" || o.kind === "or");
    case "or":
      return join(filter.operands, " | ", (o) => o.kind === "or");
    case "not": {
      const { operand } = filter;
      const parens = operand.kind === "and" || operand.kind === "or";
      const inner = write(operand, offset + (parens ? 2 : 1), visit);
      return parens ? `!(${inner})` : `!${inner}`;
    }
    case "glob":
      return `${filter.field}:${value(filter.pattern)}`;
    case "cidr":
      return `${filter.field}:${value(filter.cidr)}`;
    case "range":
      return filter.min === filter.max ? `${filter.field}:${filter.min}` : `${filter.field}:${filter.min}-${filter.max}`;
    case "enum":
      return `${filter.field}:${filter.value ?? "none"}`;
    case "tag":
      return `tag:${value(filter.value === null ? filter.key : `${filter.key}=${filter.value}`)}`;
    case "compare":
      return `${filter.measure}${filter.op}${filter.measure === "dur" ? amount(filter.amount, TIME_UNITS) : amount(filter.amount, SIZE_UNITS)}`;
    case "payload":
      // Escape lone quotes; `\x` pairs (`\"` included) pass as they are.
      return `~${filter.flags}"${filter.pattern.replace(/(\\[\s\S])|"/g, (_, pair: string | undefined) => pair ?? '\\"')}"`;
    case "tls":
      return filter.state === null ? "tls" : `tls:${filter.state}`;
    case "alpn":
      return `alpn:${value(filter.pattern)}`;
    case "via":
      return filter.pattern === null ? "via:direct" : `via:${value(filter.pattern)}`;
    case "stage":
      return `stage:${filter.stage}`;
    default:
      return assertNever(filter);
  }
}

function value(text: string): string {
  return text !== "" && !/[\s()&|"]/.test(text) ? text : `"${text.replace(/[\\"]/g, "\\$&")}"`;
}

const TIME_UNITS: readonly (readonly [string, number])[] = [
  ["h", 3_600_000],
  ["m", 60_000],
  ["s", 1000],
  ["ms", 1],
];
const SIZE_UNITS: readonly (readonly [string, number])[] = [
  ["g", 1024 ** 3],
  ["m", 1024 ** 2],
  ["k", 1024],
  ["", 1],
];

function amount(n: number, units: readonly (readonly [string, number])[]): string {
  for (const [unit, size] of units) {
    const count = n / size;
    if (n !== 0 && Number.isInteger(count) && count * size === n) return `${count}${unit}`;
  }
  return `${decimal(n)}${units[units.length - 1]![0]}`;
}

/** Number text without exponent notation (`1e-7` → `0.0000001`), which the parser would reject. */
function decimal(n: number): string {
  const text = String(n);
  const exponent = /^(\d)(?:\.(\d+))?e-(\d+)$/.exec(text);
  if (exponent === null) return text;
  return `0.${"0".repeat(Number(exponent[3]) - 1)}${exponent[1]}${exponent[2] ?? ""}`;
}
