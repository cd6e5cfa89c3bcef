/**
 * Rewrites the attention core that tessera emits for a ViT block into ONNX Runtime's fused
 * `com.microsoft.MultiHeadAttention` kernel, for exports meant for ORT's CPU provider.
 *
 * The traced pattern (one per block), from the packed qkv projection [B·N, 3·H·d] to the
 * heads merged back as [B, N, H, d]:
 *
 *   Reshape [-1, N, 3, H, d] → Transpose (2,0,3,1,4) → three Slices on axis 0 → Reshape to
 *   [-1, H, N, d] each → q·scale, kᵀ (Transpose 0,1,3,2) → MatMul → Softmax → MatMul v →
 *   Transpose (0,2,1,3)
 *
 * becomes Reshape [-1, N, 3·H·d] → Split into q, k, v [B, N, H·d] → MultiHeadAttention(H, scale)
 * → [B, N, H·d], which the Reshape that followed the merge reads unchanged (same elements in the
 * same order). Why a contrib op: ORT's optimiser fuses the unfused chain into FusedMatMul +
 * Softmax + MatMul with four Transposes and a Split around them, a fifth of the int8 model's
 * time at batch 32 (bench/int8_inference.ts profile); the fused kernel does the per-head
 * products and softmax without materialising the transposed copies. The standard ONNX
 * `Attention` op needs opset 23, beyond the opsets tessera exports (17–21). A file rewritten
 * here runs in ORT (CPU, and every build that ships the contrib ops) but not in runtimes
 * without them, so it is an export option, not the default for plain fp32 files.
 */
import { onnx, type ModelProto, type NodeProto, type TensorProto } from '../onnx/proto.js';
import { floatData, int64Data, pruneUnused } from './quantize.js';

export const MS_DOMAIN = 'com.microsoft';

interface Graph { producer: Map<string, NodeProto>; consumers: Map<string, NodeProto[]>; inits: Map<string, TensorProto> }

/** Returns the model with every matched attention core fused, and how many were. */
export function fuseAttention(model: ModelProto): { model: ModelProto; fused: number } {
  const graph = model.graph!;
  const g: Graph = { producer: new Map(), consumers: new Map(), inits: new Map((graph.initializer ?? []).map((t) => [t.name!, t])) };
  for (const n of graph.node ?? []) {
    for (const o of n.output ?? []) g.producer.set(o, n);
    for (const i of n.input ?? []) g.consumers.set(i, [...(g.consumers.get(i) ?? []), n]);
  }
  const replaced = new Map<NodeProto, NodeProto[]>(); // the merge Transpose → the nodes that replace the core
  const newInits: TensorProto[] = [];
  for (const softmax of graph.node ?? []) {
    if (softmax.opType !== 'Softmax' || (softmax.domain ?? '') !== '') continue;
    const m = matchCore(g, softmax);
    if (!m) continue;
    const id = softmax.name || softmax.output![0]!;
    const shape = `${id}/qkv_shape`;
    const split = `${id}/qkv_split`;
    const dModel = m.heads * m.headDim;
    newInits.push(int64Tensor(shape, [-1, m.tokens, 3 * dModel]), int64Tensor(split, [dModel, dModel, dModel]));
    const [q, k, v, qkv] = ['q', 'k', 'v', 'qkv3'].map((s) => `${id}/${s}`) as [string, string, string, string];
    replaced.set(m.merge, [
      { opType: 'Reshape', input: [m.qkv, shape], output: [qkv], name: `${id}/ReshapeQkv` },
      { opType: 'Split', input: [qkv, split], output: [q, k, v], name: `${id}/SplitQkv`, attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 2 }] },
      {
        opType: 'MultiHeadAttention', domain: MS_DOMAIN, input: [q, k, v], output: [m.merge.output![0]!], name: `${id}/MultiHeadAttention`,
        attribute: [
          { name: 'num_heads', type: onnx.AttributeProto.AttributeType.INT, i: m.heads },
          { name: 'scale', type: onnx.AttributeProto.AttributeType.FLOAT, f: m.scale },
        ],
      },
    ]);
  }
  if (replaced.size === 0) return { model, fused: 0 };
  // the merged output keeps its name: MHA's [B, N, H·d] has the elements of the [B, N, H, d] it replaces
  const nodes = (graph.node ?? []).flatMap((n) => replaced.get(n) ?? [n]);
  const opsetImport = [...(model.opsetImport ?? []).filter((o) => o.domain !== MS_DOMAIN), { domain: MS_DOMAIN, version: 1 }];
  const rewritten: ModelProto = { ...model, opsetImport, graph: { ...graph, node: nodes, initializer: [...(graph.initializer ?? []), ...newInits] } };
  return { model: pruneUnused(rewritten), fused: replaced.size };
}

interface Core { qkv: string; merge: NodeProto; heads: number; headDim: number; tokens: number; scale: number }

function matchCore(g: Graph, softmax: NodeProto): Core | undefined {
  const axis = attrInt(softmax, 'axis') ?? -1;
  if (axis !== -1 && axis !== 3) return undefined;
  const scores = op(g, softmax.input![0]!, 'MatMul');
  const av = only(g, softmax.output![0]!, 'MatMul');
  if (!scores || !av || av.input![0] !== softmax.output![0]) return undefined;
  const merge = only(g, av.output![0]!, 'Transpose');
  if (!merge || attrInts(merge, 'perm')?.join() !== '0,2,1,3') return undefined;
  const scaled = op(g, scores.input![0]!, 'Mul');
  const kT = op(g, scores.input![1]!, 'Transpose');
  if (!scaled || !kT || attrInts(kT, 'perm')?.join() !== '0,1,3,2') return undefined;
  const scaleIdx = g.inits.has(scaled.input![1]!) ? 1 : g.inits.has(scaled.input![0]!) ? 0 : -1;
  if (scaleIdx < 0) return undefined;
  const scaleInit = g.inits.get(scaled.input![scaleIdx]!)!;
  const scaleValues = scaleInit.dataType === onnx.TensorProto.DataType.FLOAT ? floatData(scaleInit) : [];
  if (scaleValues.length !== 1) return undefined;
  const parts = [scaled.input![1 - scaleIdx]!, kT.input![0]!, av.input![1]!].map((name) => headSlice(g, name));
  if (parts.some((p) => !p)) return undefined;
  const [qp, kp, vp] = parts as HeadSlice[];
  if (qp.packed !== kp.packed || qp.packed !== vp.packed || qp.index !== 0 || kp.index !== 1 || vp.index !== 2) return undefined;
  const unpack = op(g, qp.packed, 'Transpose');
  if (!unpack || attrInts(unpack, 'perm')?.join() !== '2,0,3,1,4') return undefined;
  const split = op(g, unpack.input![0]!, 'Reshape');
  const dims = split && g.inits.has(split.input![1]!) ? int64Init(g.inits.get(split.input![1]!)!) : undefined;
  if (!split || !dims || dims.length !== 5 || dims[2] !== 3 || dims.slice(1).some((d) => d <= 0)) return undefined;
  const [, tokens, , heads, headDim] = dims as [number, number, number, number, number];
  return { qkv: split.input![0]!, merge, heads, headDim, tokens, scale: scaleValues[0]! };
}

interface HeadSlice { packed: string; index: number }

/** `Reshape(Slice(packed, [i], [i+1], axes [0]))`: one of q, k, v cut from the unpacked qkv. */
function headSlice(g: Graph, name: string): HeadSlice | undefined {
  const reshape = op(g, name, 'Reshape');
  const slice = reshape && op(g, reshape.input![0]!, 'Slice');
  if (!slice) return undefined;
  const [starts, ends, axes] = [1, 2, 3].map((i) => (slice.input![i] && g.inits.has(slice.input![i]!) ? int64Init(g.inits.get(slice.input![i]!)!) : undefined));
  if (!starts || !ends || starts.length !== 1 || ends[0] !== starts[0]! + 1 || (axes && axes[0] !== 0) || slice.input![4]) return undefined;
  return { packed: slice.input![0]!, index: starts[0]! };
}

const op = (g: Graph, tensor: string, type: string): NodeProto | undefined => {
  const n = g.producer.get(tensor);
  return n && n.opType === type && (n.domain ?? '') === '' ? n : undefined;
};

/** The single standard-domain consumer of `tensor`, when it has exactly one and of this type. */
const only = (g: Graph, tensor: string, type: string): NodeProto | undefined => {
  const c = g.consumers.get(tensor) ?? [];
  return c.length === 1 && c[0]!.opType === type && (c[0]!.domain ?? '') === '' ? c[0] : undefined;
};

const attrInt = (n: NodeProto, name: string): number | undefined => {
  const a = n.attribute?.find((x) => x.name === name);
  return a?.i === undefined || a.i === null ? undefined : Number(a.i);
};
const attrInts = (n: NodeProto, name: string): number[] | undefined => n.attribute?.find((x) => x.name === name)?.ints?.map(Number);

function int64Tensor(name: string, values: number[]): TensorProto {
  return { name, dataType: onnx.TensorProto.DataType.INT64, dims: [values.length], rawData: new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer) };
}

const int64Init = (t: TensorProto): number[] | undefined => (t.dataType === onnx.TensorProto.DataType.INT64 ? int64Data(t) : undefined);
