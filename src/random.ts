/**
 * A small seeded PRNG (xoshiro128**) for everything that must reproduce: initialisation,
 * shuffling, augmentation, drop-path masks. Its state is four uint32s, saved in resume files.
 */
export type RandomState = [number, number, number, number];

export class Random {
  private s: Uint32Array;

  constructor(seed: number | RandomState = 0) {
    this.s = new Uint32Array(4);
    if (Array.isArray(seed)) this.s.set(seed);
    else {
      // splitmix32 spreads a small seed over the whole state
      let z = seed >>> 0;
      for (let i = 0; i < 4; i++) {
        z = (z + 0x9e3779b9) >>> 0;
        let t = z;
        t = Math.imul(t ^ (t >>> 16), 0x85ebca6b);
        t = Math.imul(t ^ (t >>> 13), 0xc2b2ae35);
        this.s[i] = (t ^ (t >>> 16)) >>> 0;
      }
    }
  }

  get state(): RandomState {
    return [this.s[0]!, this.s[1]!, this.s[2]!, this.s[3]!];
  }

  /** A uint32. */
  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = s[1]! << 9;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  normal(): number {
    const u = 1 - this.uniform();
    const v = this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /**
   * Fills `out` with Normal(0, std) samples, redrawing any outside [lo, hi] (timm's trunc_normal_
   * cuts at ±2 absolute). Uses both Box–Muller outputs: model initialisation draws millions.
   */
  fillNormal(out: Float32Array, std: number, lo = -Infinity, hi = Infinity): Float32Array {
    let i = 0;
    while (i < out.length) {
      const r = Math.sqrt(-2 * Math.log(1 - this.uniform())) * std;
      const t = 2 * Math.PI * this.uniform();
      const a = r * Math.cos(t);
      if (a >= lo && a <= hi) out[i++] = a;
      const b = r * Math.sin(t);
      if (i < out.length && b >= lo && b <= hi) out[i++] = b;
    }
    return out;
  }

  /** Normal(0, std) truncated to [a, b] by rejection, as timm's trunc_normal_ (a=-2, b=2 absolute). */
  truncNormal(std: number, a = -2, b = 2): number {
    for (;;) {
      const v = this.normal() * std;
      if (v >= a && v <= b) return v;
    }
  }

  /** In-place Fisher–Yates shuffle. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [items[i], items[j]] = [items[j]!, items[i]!];
    }
    return items;
  }

  /** An independent stream derived from this one's next output and `salt`. */
  fork(salt = 0): Random {
    return new Random((this.nextU32() ^ Math.imul(salt + 1, 0x9e3779b9)) >>> 0);
  }
}

const rotl = (x: number, k: number): number => ((x << k) | (x >>> (32 - k))) >>> 0;

/** A 32-bit seed mixed from several integers (e.g. run seed, epoch, sample index). */
export function mixSeed(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x01000193);
    h ^= h >>> 15;
    h = Math.imul(h, 0x2c1b3c6d);
    h ^= h >>> 12;
  }
  return h >>> 0;
}
