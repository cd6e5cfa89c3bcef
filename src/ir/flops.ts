/** Floating-point operations of a traced graph, counted from its matmuls and convolutions. */
import { concreteShape } from './shape.js';
import type { Graph } from './graph.js';
import type { Tensor } from './tensor.js';

/**
 * FLOPs (2 × multiply-accumulates) of matmul and conv nodes reachable from `outputs`, at the
 * given batch size. Elementwise work is left out, as timm/fvcore tables do.
 */
export function countFlops(graph: Graph, outputs: readonly Tensor[], batch = 1): number {
  const seen = new Set<number>();
  const stack = outputs.map((t) => t.id);
  let flops = 0;
  while (stack.length) {
    const id = stack.pop()!;
    if (seen.has(id)) continue;
    seen.add(id);
    const n = graph.node(id);
    if (n.kind !== 'op') continue;
    stack.push(...n.inputs);
    const outElems = concreteShape(n.shape, batch).reduce((a, b) => a * b, 1);
    if (n.prim === 'matmul') {
      const a = graph.node(n.inputs[0]!);
      flops += 2 * outElems * (a.shape[a.shape.length - 1] as number);
    } else if (n.prim === 'chunkedAttention') {
      // q kᵀ and P v: 2 · (rows × keys) · (D + Dv) per batch-head, out [..., N, Dv]
      const [q, k] = [graph.node(n.inputs[0]!), graph.node(n.inputs[1]!)];
      const keys = k.shape[k.shape.length - 2] as number;
      const dv = n.shape[n.shape.length - 1] as number;
      flops += 2 * (outElems / dv) * keys * ((q.shape[q.shape.length - 1] as number) + dv);
    } else if (n.prim === 'conv2d' || n.prim === 'convTranspose2d') {
      const w = graph.node(n.inputs[1]!);
      const [, ci, kh, kw] = concreteShape(w.shape, batch);
      // per output element: (input channels per group) × kernel area MACs
      const perOut = n.prim === 'conv2d' ? ci! * kh! * kw! : (concreteShape(w.shape, batch)[0]! / (n.attrs as { groups: number }).groups) * kh! * kw!;
      flops += 2 * outElems * perOut;
    }
  }
  return flops;
}
