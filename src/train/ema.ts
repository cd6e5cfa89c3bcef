/** Exponential moving average of the weights (timm's ModelEmaV2): ema ← d·ema + (1 − d)·w after each optimiser step. */
import type { Module } from '../nn/module.js';

export class ModelEma {
  readonly weights = new Map<string, Float32Array>();

  constructor(model: Module, readonly decay: number) {
    for (const [k, p] of model.namedParameters()) this.weights.set(k, Float32Array.from(p.data));
  }

  update(model: Module): void {
    const d = this.decay;
    for (const [k, p] of model.namedParameters()) {
      const e = this.weights.get(k)!;
      const w = p.data;
      for (let i = 0; i < e.length; i++) e[i] = d * e[i]! + (1 - d) * w[i]!;
    }
  }
}
