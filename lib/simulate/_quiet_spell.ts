// When the quiet board is out of reach: `afterMs` of normal operation, then `forMs` of silence,
// over and over.

/** True when `elapsedMs` after the fleet's start falls in one of the quiet board's silent spells. */
export function inQuietSpell(elapsedMs: number, opts: { afterMs: number; forMs: number }): boolean {
  const t = elapsedMs - opts.afterMs;
  return t >= 0 && t % (opts.afterMs + opts.forMs) < opts.forMs;
}
