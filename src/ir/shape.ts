/**
 * Static shapes with one symbolic batch size.
 *
 * A dimension is either a number or a multiple of the batch size `B` (written `{ batch: k }`).
 * Multiples appear when the batch axis is merged with another one (`[B, N, C] -> [B*N, C]`),
 * and keep reshapes exact without baking a batch size into the graph.
 */

export type BatchDim = { readonly batch: number };
export type Dim = number | BatchDim;
export type Shape = readonly Dim[];

/** The batch dimension, as users write it in input specs. */
export const BATCH: BatchDim = Object.freeze({ batch: 1 });

export const isBatchDim = (d: Dim): d is BatchDim => typeof d !== 'number';

export function dimEquals(a: Dim, b: Dim): boolean {
  if (typeof a === 'number' || typeof b === 'number') return a === b;
  return a.batch === b.batch;
}

export function shapeEquals(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => dimEquals(d, b[i]!));
}

export function formatDim(d: Dim): string {
  if (typeof d === 'number') return String(d);
  return d.batch === 1 ? 'B' : `${d.batch}B`;
}

export const formatShape = (s: Shape): string => `[${s.map(formatDim).join(', ')}]`;

/** Element count as `coef * B^power`. */
export interface Numel { coef: number; power: number }

export function numel(s: Shape): Numel {
  let coef = 1;
  let power = 0;
  for (const d of s) {
    if (typeof d === 'number') coef *= d;
    else { coef *= d.batch; power += 1; }
  }
  return { coef, power };
}

export const isStatic = (s: Shape): s is readonly number[] => s.every((d) => typeof d === 'number');

export function staticNumel(s: Shape): number | undefined {
  const n = numel(s);
  return n.power === 0 ? n.coef : undefined;
}

/** Resolves a concrete shape for a given batch size. */
export function concreteShape(s: Shape, batch: number): number[] {
  return s.map((d) => (typeof d === 'number' ? d : d.batch * batch));
}

export function normAxis(axis: number, rank: number, what: string): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new RangeError(`${what}: axis ${axis} is out of range for rank ${rank}`);
  return a;
}

/** Numpy broadcasting of two shapes, or undefined when they are incompatible. */
export function broadcastShapes(a: Shape, b: Shape): Dim[] | undefined {
  const rank = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (dimEquals(da, db) || db === 1) out.push(da);
    else if (da === 1) out.push(db);
    else return undefined;
  }
  return out;
}
