// Seeded pseudo-random numbers, so a fleet started with the same `--seed` draws the same curves.
import { hash32 } from "../text/hash.ts";

/** A source of reproducible random numbers. */
export interface Random {
  /** Uniform in [0, 1). */
  next(): number;
  /** Standard normal (mean 0, deviation 1). */
  normal(): number;
  /** Uniform in [min, max). */
  between(min: number, max: number): number;
}

/** A uniform number in [0, 1) derived from a key alone: the same key always gives the same number. */
export function hashUnit(key: string): number {
  return hash32(key) / 2 ** 32;
}

/** Creates a generator (mulberry32) whose sequence depends only on `seed`. */
export function createRandom(seed: string): Random {
  let state = hash32(seed);
  let spare: number | undefined;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  return {
    next,
    normal() {
      if (spare !== undefined) {
        const s = spare;
        spare = undefined;
        return s;
      }
      // Box-Muller; 1 - next() keeps the logarithm away from zero.
      const r = Math.sqrt(-2 * Math.log(1 - next()));
      const a = 2 * Math.PI * next();
      spare = r * Math.sin(a);
      return r * Math.cos(a);
    },
    between: (min, max) => min + (max - min) * next(),
  };
}
