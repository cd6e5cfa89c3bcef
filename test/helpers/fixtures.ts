/** Loading committed golden fixtures. */
import { readFileSync } from 'node:fs';
import { parseSafetensors, toFloat32 } from '../../src/checkpoint/safetensors.js';

export const fixturePath = (name: string): string => new URL(`../fixtures/${name}`, import.meta.url).pathname;

export function readJsonFixture<T = any>(name: string): T {
  return JSON.parse(readFileSync(fixturePath(name), 'utf8')) as T;
}

/** All tensors of a safetensors fixture as float32 arrays with shapes. */
export function readTensorFixture(name: string): Map<string, { data: Float32Array; shape: number[] }> {
  const file = parseSafetensors(readFileSync(fixturePath(name)), name);
  return new Map([...file.tensors].map(([k, t]) => [k, { data: toFloat32(t, k), shape: t.shape }]));
}

/** The deterministic weights of scripts/timm_vit.py (`deterministic_values`), so goldens need no weight files. */
export function deterministicValues(key: string, count: number): Float32Array {
  let h = 0;
  for (let j = 0; j < key.length; j++) h += (j + 1) * key.charCodeAt(j);
  h %= 10007;
  const isNormWeight = key.endsWith('.weight') && ['norm', 'norm1', 'norm2', 'fc_norm'].some((s) => key.slice(0, -'.weight'.length).endsWith(s));
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const base = Math.sin(0.7 * i + 0.013 * h);
    out[i] = isNormWeight ? 1 + 0.1 * base : key.endsWith('.bias') ? 0.02 * base : 0.05 * base;
  }
  return out;
}

/** x[i] = sin(0.05 i), as scripts/timm_vit.py's det_input. */
export const deterministicInput = (count: number): Float32Array => Float32Array.from({ length: count }, (_, i) => Math.sin(0.05 * i));

/** Overwrites every parameter of `model` with deterministicValues, as the golden scripts' fill_deterministic does. */
export function deterministicModel<M extends { namedParameters(): [string, { size: number; data: Float32Array }][] }>(model: M): M {
  for (const [k, p] of model.namedParameters()) p.data = deterministicValues(k, p.size);
  return model;
}

export const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};
