/**
 * Globs for goals (`page` patterns) and `matches` filters: `**` matches any run of characters,
 * `*` any run without `/`, every other character itself; the whole value must match. Matched
 * by simulating the pattern's automaton (time O(pattern × value), memory O(pattern)), never by
 * a backtracking regular expression, so no pattern can make matching slow.
 */

type Token = { readonly kind: 'char'; readonly ch: string } | { readonly kind: 'star' } | { readonly kind: 'globstar' };

export type Matcher = (value: string) => boolean;

export function compileGlob(pattern: string): Matcher {
  const tokens: Token[] = [];
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] === '*') {
      if (pattern[i + 1] === '*') {
        i++;
        // Consecutive stars beyond two change nothing: `***` is `**`.
        while (pattern[i + 1] === '*') i++;
        tokens.push({ kind: 'globstar' });
      } else {
        tokens.push({ kind: 'star' });
      }
    } else {
      tokens.push({ kind: 'char', ch: pattern[i]! });
    }
  }
  if (tokens.every((t) => t.kind === 'char')) return (value) => value === pattern;
  const n = tokens.length;
  return (value: string) => {
    // active[i]: the automaton may be before token i. Stars are skippable (match empty).
    let active = new Uint8Array(n + 1);
    let next = new Uint8Array(n + 1);
    const close = (set: Uint8Array) => {
      for (let i = 0; i < n; i++) if (set[i] && tokens[i]!.kind !== 'char') set[i + 1] = 1;
    };
    active[0] = 1;
    close(active);
    for (let p = 0; p < value.length; p++) {
      const c = value[p]!;
      next.fill(0);
      let any = false;
      for (let i = 0; i < n; i++) {
        if (!active[i]) continue;
        const t = tokens[i]!;
        if (t.kind === 'char') {
          if (t.ch === c) { next[i + 1] = 1; any = true; }
        } else if (t.kind === 'globstar' || c !== '/') {
          next[i] = 1;
          any = true;
        }
      }
      if (!any) return false;
      close(next);
      [active, next] = [next, active];
    }
    return active[n] === 1;
  };
}
