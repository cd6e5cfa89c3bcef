/**
 * AdamW's update as one WebAssembly SIMD pass (4 float32 lanes) over a parameter, its gradient
 * and its two moments. The JavaScript loop it replaces spent ≈ 12 ns a parameter (70 ms a step
 * for ViT-Ti's 5.7 M parameters, on one core while ORT's threads wait); this is float32 math in
 * PyTorch's order (torch.optim.AdamW's single-tensor step):
 *   p ← p·(1 − lr·wd);  m ← m + (1 − β₁)(g − m);  v ← v·β₂ + (1 − β₂)·g·g;
 *   p ← p − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
 * The moments live in the module's memory for good; parameter and gradient are copied in (and the
 * parameter out) per tensor, each padded to whole lanes with zeros, which stay zero. The loop is
 * adamw.as.ts (AssemblyScript, compiled by scripts/build_wasm.mjs), one instance per optimiser
 * over a memory sized to its moments.
 */

import { wasmModule } from '../data/kernels/instance.js';
import { WASM_BASE64 } from './adamw_module.js';

const module = wasmModule(WASM_BASE64);

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
    const compiled = module();
    if (!compiled) return undefined;
    try {
      return new AdamWKernel(sizes, compiled);
    } catch (e) {
      if (e instanceof RangeError) return undefined;
      throw e;
    }
  }

  private constructor(sizes: readonly number[], compiled: WebAssembly.Module) {
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
    const instance = new WebAssembly.Instance(compiled, { env: { memory: this.memory } });
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
