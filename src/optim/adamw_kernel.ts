/**
 * AdamW's update as one WebAssembly SIMD pass (4 float32 lanes) over a parameter, its gradient
 * and its two moments. The JavaScript loop it replaces spent ≈ 12 ns a parameter (70 ms a step
 * for ViT-Ti's 5.7 M parameters, on one core while ORT's threads wait); this is float32 math in
 * PyTorch's order (torch.optim.AdamW's single-tensor step):
 *   p ← p·(1 − lr·wd);  m ← m + (1 − β₁)(g − m);  v ← v·β₂ + (1 − β₂)·g·g;
 *   p ← p − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
 * The moments live in the module's memory for good; parameter and gradient are copied in (and the
 * parameter out) per tensor, each padded to whole lanes with zeros, which stay zero.
 */

const I32 = 0x7f;
const F32 = 0x7d;
const V128 = 0x7b;

// parameters: 0 p, 1 g, 2 m, 3 v (byte addresses), 4 end (bytes), 5 c1 = 1 − β₁, 6 β₂, 7 c2 = 1 − β₂,
// 8 decay, 9 stepSize, 10 √(1 − β₂ᵗ), 11 ε;  locals: 12 i, 13–19 their splats, 20 g, 21 m, 22 v
const [P, G, M, V, END] = [0, 1, 2, 3, 4];
const I = 12;
const [C1, B2, C2, DECAY, STEP, SQRT_BC2, EPS] = [13, 14, 15, 16, 17, 18, 19];
const [GV, MV, VV] = [20, 21, 22];

const get = (i: number) => [0x20, i];
const set = (i: number) => [0x21, i];
const tee = (i: number) => [0x22, i];
const simd = (op: number) => [0xfd, ...uleb(op)];
const load = [...simd(0x00), 2, 0];
const store = [...simd(0x0b), 2, 0];
const [splat, sqrt, add, sub, mul, div] = [0x13, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7].map(simd) as [number[], number[], number[], number[], number[], number[]];
const addr = (base: number) => [...get(base), ...get(I), 0x6a];

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n) byte |= 0x80;
    out.push(byte);
  } while (n);
  return out;
}
const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];
const name = (s: string) => vec([...s].map((c) => [c.charCodeAt(0)]));

function moduleBytes(): Uint8Array<ArrayBuffer> {
  const body = [
    ...vec([[1, I32], [10, V128]]),
    ...[C1, B2, C2, DECAY, STEP, SQRT_BC2, EPS].flatMap((l) => [...get(l - 8), ...splat, ...set(l)]),
    0x02, 0x40, 0x03, 0x40, // block, loop
    ...get(I), ...get(END), 0x4f, 0x0d, 1, // i ≥ end: leave the block
    ...addr(G), ...load, ...set(GV),
    // m + c1 (g − m)
    ...addr(M), ...addr(M), ...load, ...get(C1), ...get(GV), ...addr(M), ...load, ...sub, ...mul, ...add, ...tee(MV), ...store,
    // v β₂ + (c2 g) g
    ...addr(V), ...addr(V), ...load, ...get(B2), ...mul, ...get(C2), ...get(GV), ...mul, ...get(GV), ...mul, ...add, ...tee(VV), ...store,
    // p decay − stepSize (m / (√v / √bc2 + ε))
    ...addr(P), ...addr(P), ...load, ...get(DECAY), ...mul,
    ...get(STEP), ...get(MV), ...get(VV), ...sqrt, ...get(SQRT_BC2), ...div, ...get(EPS), ...add, ...div, ...mul, ...sub, ...store,
    ...get(I), 0x41, 16, 0x6a, ...set(I), 0x0c, 0, // i += 16, loop again
    0x0b, 0x0b, 0x0b, // end loop, block, function
  ];
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([[0x60, ...vec([I32, I32, I32, I32, I32, F32, F32, F32, F32, F32, F32, F32].map((t) => [t])), 0]])),
    ...section(2, vec([[...name('env'), ...name('memory'), 0x02, 0x00, 1]])),
    ...section(3, vec([[0]])),
    ...section(7, vec([[...name('adamw'), 0x00, 0]])),
    ...section(10, vec([[...uleb(body.length), ...body]])),
  ]);
}

type Update = (p: number, g: number, m: number, v: number, end: number, c1: number, b2: number, c2: number,
  decay: number, stepSize: number, sqrtBc2: number, eps: number) => void;

export interface StepScalars { beta1: number; beta2: number; eps: number; decay: number; stepSize: number; sqrtBc2: number }

/** The moments of a list of tensors in WebAssembly memory, and the update over one of them. */
export class AdamWKernel {
  /** Per tensor: first and second moment, views into the module's memory. */
  readonly m: Float32Array[];
  readonly v: Float32Array[];
  private readonly memory: WebAssembly.Memory;
  private readonly update: Update;
  private readonly offsets: number[];
  private readonly scratchP: number;
  private readonly scratchG: number;

  /**
   * undefined where WebAssembly SIMD is not available, or the moments do not fit one 32-bit
   * memory (4 GiB: models beyond ≈ 500 M parameters), or the memory cannot be had.
   */
  static create(sizes: readonly number[]): AdamWKernel | undefined {
    const bytes = moduleBytes();
    if (typeof WebAssembly === 'undefined' || !WebAssembly.validate(bytes)) return undefined;
    try {
      return new AdamWKernel(sizes, bytes);
    } catch (e) {
      if (e instanceof RangeError) return undefined;
      throw e;
    }
  }

  private constructor(sizes: readonly number[], bytes: Uint8Array<ArrayBuffer>) {
    const padded = sizes.map((n) => Math.ceil(n / 4) * 16);
    const largest = Math.max(16, ...padded);
    this.offsets = [];
    let at = 0;
    for (const b of padded) { this.offsets.push(at); at += 2 * b; }
    this.scratchP = at;
    this.scratchG = at + largest;
    const pages = Math.max(1, Math.ceil((at + 2 * largest) / 65536));
    if (pages > 65536) throw new RangeError(`AdamW: ${pages} pages of moments exceed a 32-bit WebAssembly memory`);
    this.memory = new WebAssembly.Memory({ initial: pages });
    const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory: this.memory } });
    this.update = instance.exports.adamw as Update;
    this.m = sizes.map((n, k) => new Float32Array(this.memory.buffer, this.offsets[k]!, n));
    this.v = sizes.map((n, k) => new Float32Array(this.memory.buffer, this.offsets[k]! + padded[k]!, n));
  }

  /** Updates tensor k's parameter `p` in place from its gradient `g`. */
  step(k: number, p: Float32Array, g: Float32Array, s: StepScalars): void {
    const n = p.length;
    if (g.length !== n) throw new RangeError(`AdamW: gradient has ${g.length} values, the parameter ${n}`);
    const buf = this.memory.buffer;
    const pv = new Float32Array(buf, this.scratchP, n);
    const gv = new Float32Array(buf, this.scratchG, n);
    pv.set(p);
    gv.set(g);
    // the padding lanes after n: zeros in, so their moments and parameter stay zero
    const end = Math.ceil(n / 4) * 4;
    new Float32Array(buf, this.scratchP + 4 * n, end - n).fill(0);
    new Float32Array(buf, this.scratchG + 4 * n, end - n).fill(0);
    const padded = end * 4;
    this.update(this.scratchP, this.scratchG, this.offsets[k]!, this.offsets[k]! + padded, padded,
      1 - s.beta1, s.beta2, 1 - s.beta2, s.decay, s.stepSize, s.sqrtBc2, s.eps);
    p.set(pv);
  }
}
