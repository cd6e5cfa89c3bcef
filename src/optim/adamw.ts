/**
 * Optimisers on host Float32Arrays. AdamW (Loshchilov & Hutter 2019, decoupled weight decay)
 * and SGD with momentum/Nesterov, with PyTorch's update order so trajectories match its goldens.
 */
import type { Parameter } from '../nn/module.js';
import { AdamWKernel } from './adamw_kernel.js';

export interface ParamSpec {
  name: string;
  param: Parameter;
  /** Multiplies the scheduled LR (layer-wise decay). */
  lrScale?: number;
  weightDecay: number;
}

/**
 * timm's rule: no weight decay for 1-D tensors (biases, norm weights) and for position
 * embeddings and prefix tokens.
 */
export function defaultNoDecay(name: string, p: Parameter): boolean {
  return p.shape.length <= 1 || /(^|\.)(pos_embed|cls_token|dist_token)$/.test(name);
}

export function paramSpecs(params: [string, Parameter][], weightDecay: number,
  noDecay: (name: string, p: Parameter) => boolean = defaultNoDecay): ParamSpec[] {
  return params.map(([name, param]) => ({ name, param, weightDecay: noDecay(name, param) ? 0 : weightDecay }));
}

export interface Optimizer {
  readonly specs: ParamSpec[];
  /** One update; parameters whose gradient is undefined (frozen ones) are left alone, moments included. */
  step(grads: (name: string) => Float32Array | undefined, lr: number): void;
  /** Moment buffers and counters, for resume files. */
  stateTensors(): Record<string, Float32Array>;
  loadStateTensors(state: Record<string, Float32Array>): void;
  stepCount: number;
}

export interface AdamWOptions {
  beta1?: number; beta2?: number; eps?: number;
  /** Use the WebAssembly SIMD kernel where the runtime has it (default); false runs the JavaScript loop. */
  simd?: boolean;
}

export class AdamW implements Optimizer {
  readonly m: Float32Array[];
  readonly v: Float32Array[];
  stepCount = 0;
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;
  /** The WebAssembly SIMD update, where the runtime has it (the moments then live in its memory). */
  private readonly kernel: AdamWKernel | undefined;

  constructor(readonly specs: ParamSpec[], { beta1 = 0.9, beta2 = 0.999, eps = 1e-8, simd = true }: AdamWOptions = {}) {
    this.beta1 = beta1;
    this.beta2 = beta2;
    this.eps = eps;
    this.kernel = simd ? AdamWKernel.create(specs.map((s) => s.param.size)) : undefined;
    this.m = this.kernel?.m ?? specs.map((s) => new Float32Array(s.param.size));
    this.v = this.kernel?.v ?? specs.map((s) => new Float32Array(s.param.size));
  }

  step(grads: (name: string) => Float32Array | undefined, lr: number): void {
    this.stepCount++;
    const { beta1: b1, beta2: b2, eps } = this;
    const bc1 = 1 - b1 ** this.stepCount;
    const sqrtBc2 = Math.sqrt(1 - b2 ** this.stepCount);
    this.specs.forEach((s, k) => {
      const g = grads(s.name);
      if (!g) return;
      const p = s.param.data;
      const m = this.m[k]!;
      const v = this.v[k]!;
      const rate = lr * (s.lrScale ?? 1);
      const decay = 1 - rate * s.weightDecay;
      const stepSize = rate / bc1;
      if (this.kernel) {
        this.kernel.step(k, p, g, { beta1: b1, beta2: b2, eps, decay, stepSize, sqrtBc2 });
        return;
      }
      for (let i = 0; i < p.length; i++) {
        const gi = g[i]!;
        p[i]! *= decay;
        m[i] = b1 * m[i]! + (1 - b1) * gi;
        v[i] = b2 * v[i]! + (1 - b2) * gi * gi;
        p[i]! -= (stepSize * m[i]!) / (Math.sqrt(v[i]!) / sqrtBc2 + eps);
      }
    });
  }

  stateTensors(): Record<string, Float32Array> {
    const out: Record<string, Float32Array> = {};
    this.specs.forEach((s, k) => {
      out[`exp_avg.${s.name}`] = this.m[k]!;
      out[`exp_avg_sq.${s.name}`] = this.v[k]!;
    });
    return out;
  }

  loadStateTensors(state: Record<string, Float32Array>): void {
    this.specs.forEach((s, k) => {
      const m = state[`exp_avg.${s.name}`];
      const v = state[`exp_avg_sq.${s.name}`];
      if (!m || !v) throw new RangeError(`the saved optimiser state has no AdamW moments for "${s.name}" (was it saved by another --opt?)`);
      this.m[k]!.set(m);
      this.v[k]!.set(v);
    });
  }
}

export interface SgdOptions { momentum?: number; nesterov?: boolean; dampening?: number }

/** SGD with PyTorch's coupled weight decay (added to the gradient) and momentum/Nesterov. */
export class SGD implements Optimizer {
  readonly buf: Float32Array[];
  stepCount = 0;

  constructor(readonly specs: ParamSpec[], private readonly opts: SgdOptions = {}) {
    if (opts.nesterov && !(opts.momentum! > 0)) throw new RangeError('Nesterov momentum needs momentum > 0');
    this.buf = specs.map((s) => new Float32Array(s.param.size));
  }

  step(grads: (name: string) => Float32Array | undefined, lr: number): void {
    const { momentum = 0, nesterov = false, dampening = 0 } = this.opts;
    const first = this.stepCount === 0;
    this.stepCount++;
    this.specs.forEach((s, k) => {
      const g = grads(s.name);
      if (!g) return;
      const p = s.param.data;
      const b = this.buf[k]!;
      const rate = lr * (s.lrScale ?? 1);
      for (let i = 0; i < p.length; i++) {
        let d = g[i]! + s.weightDecay * p[i]!;
        if (momentum > 0) {
          b[i] = first ? d : momentum * b[i]! + (1 - dampening) * d;
          d = nesterov ? d + momentum * b[i]! : b[i]!;
        }
        p[i]! -= rate * d;
      }
    });
  }

  stateTensors(): Record<string, Float32Array> {
    return Object.fromEntries(this.specs.map((s, k) => [`momentum_buffer.${s.name}`, this.buf[k]!]));
  }

  loadStateTensors(state: Record<string, Float32Array>): void {
    this.specs.forEach((s, k) => {
      const b = state[`momentum_buffer.${s.name}`];
      if (!b) throw new RangeError(`the saved optimiser state has no SGD momentum buffer for "${s.name}" (was it saved by another --opt?)`);
      this.buf[k]!.set(b);
    });
  }
}
