// The tests' own seeded randomness and seed ranges: mulberry32, and SEED / FIRST_SEED / SEEDS from
// the environment, so that every seeded test prints and replays its seeds the same way.

const UINT_MAX = 0xffffffff;

/** mulberry32: a tiny seeded PRNG with uniform 32-bit outputs. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  u32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** A uniform integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor((this.u32() / 2 ** 32) * (max - min + 1));
  }
  chance(p: number): boolean {
    return this.u32() / 2 ** 32 < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)];
  }
  /** `count` random bytes; with `nonZero`, none is zero (a zero then means "never written"). */
  bytes(count: number, nonZero = false): Uint8Array {
    const out = new Uint8Array(count);
    for (let i = 0; i < count; i += 4) {
      const word = nonZero ? this.u32() | 0x01010101 : this.u32();
      out[i] = word;
      if (i + 1 < count) out[i + 1] = word >>> 8;
      if (i + 2 < count) out[i + 2] = word >>> 16;
      if (i + 3 < count) out[i + 3] = word >>> 24;
    }
    return out;
  }
}

/** An integer in 0..UINT_MAX from the environment, or undefined when unset. */
export function envInt(name: string): number | undefined {
  const text = process.env[name];
  if (text === undefined || text === "") return undefined;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0 || value > UINT_MAX) throw new Error(`${name} ${text} must be an integer in 0..${UINT_MAX}`);
  return value;
}

/** The seeds a seeded test runs: SEED=n replays one (verbosely), FIRST_SEED/SEEDS pick a range. */
export function seedRange(defaultCount: number, defaultFirst = 1): { first: number; last: number; replay: boolean } {
  const replay = envInt("SEED");
  const first = replay ?? envInt("FIRST_SEED") ?? defaultFirst;
  const count = replay !== undefined ? 1 : envInt("SEEDS") ?? defaultCount;
  return { first, last: first + count - 1, replay: replay !== undefined };
}
