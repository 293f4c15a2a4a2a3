/**
 * "Did you mean …?": the one closest-match rule for every message that suggests a name (the
 * loader's hooks and option keys, the filter's fields and comparisons). Pure, no imports: any
 * layer may use it.
 */

/**
 * The candidate nearest to `word`, ignoring case, when it is near enough to be a typo: at most
 * max(2, ⌊length/3⌋) edits (a swap of neighbours is one edit), and fewer edits than `word` has
 * characters (`x` is no typo of `y`). The first of equally near candidates wins; undefined when
 * none is near enough. Returns the candidate as spelt in `candidates`.
 */
export function closestMatch(word: string, candidates: Iterable<string>): string | undefined {
  const lower = word.toLowerCase();
  const limit = Math.min(Math.max(2, Math.floor(word.length / 3)), word.length - 1);
  let best: string | undefined;
  let bestDistance = limit + 1;
  for (const candidate of candidates) {
    const d = editDistance(lower, candidate.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best;
}

/**
 * The optimal string alignment distance between two strings, case-sensitive: insertions,
 * deletions, substitutions and swaps of neighbouring characters count one each (Levenshtein
 * plus adjacent transpositions, no edit of a substring twice). Counts UTF-16 units.
 */
export function editDistance(a: string, b: string): number {
  // Three rows suffice: the previous two (for a swap) and the current one.
  let before: number[] = [];
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(previous[j]! + 1, row[j - 1]! + 1, previous[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, before[j - 2]! + 1);
      row.push(d);
    }
    [before, previous] = [previous, row];
  }
  return previous[b.length]!;
}
