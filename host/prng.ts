// The one seeded PRNG that drives every random choice of a disk (latency, crash survivors).

/** mulberry32: tiny and fast, fully determined by its seed. */
export class Prng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** A uniform 32-bit unsigned integer. */
  nextU32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** A uniform integer in [min, max]. */
  between(min: number, max: number): number {
    const span = max - min + 1;
    // Small spans (latencies in ticks) come back as int32 (V8 then keeps the values unboxed);
    // the same value either way.
    return span <= 0x7fffffff && min >= -0x40000000 && max <= 0x3fffffff ? (min + (this.nextU32() % span)) | 0 : min + (this.nextU32() % span);
  }
  /** A uniform float in [0, 1). */
  next(): number {
    return this.nextU32() / 2 ** 32;
  }
}
