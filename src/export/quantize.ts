/**
 * Dynamic int8 quantisation of an ONNX model's weight matmuls, as a rewrite of the model proto.
 *
 * Every `MatMul(A, B)` whose B is a constant matrix (an initializer, possibly behind the
 * Transpose/Reshape that tessera emits for PyTorch-layout weights) becomes
 *
 *   Aq, a_scale, a_zp = DynamicQuantizeLinear(A)            // uint8, per tensor, at run time
 *   Y = Cast(MatMulInteger(Aq, Bq, a_zp, b_zp)) · (a_scale · b_scale)
 *
 * with Bq int8, symmetric (zero point 0) and one scale per output channel (column of B); per-
 * channel zero points and scales for MatMulInteger's B are standard ONNX since opset 10, so
 * every supported opset (17–21) allows it. Only standard ops are used: the file passes
 * onnx.checker and runs in any runtime (onnxruntime-web included). ORT's CPU optimiser fuses
 * exactly this pattern (DynamicQuantizeLinear → MatMulInteger → Cast → Mul, and the bias Add)
 * into its `com.microsoft.DynamicQuantizeMatMul` kernel, so emitting that contrib op directly
 * would run the same kernel while tying the file to ORT.
 *
 * Activation matmuls (attention's QKᵀ and AV) keep float32.
 */
import { onnx, type ModelProto, type NodeProto, type TensorProto } from '../onnx/proto.js';

export interface QuantizeOptions {
  /** One scale per output channel (default) or one per weight matrix. */
  perChannel?: boolean;
  /** Weights (by initializer name) to leave in float32, e.g. ['head.weight']. */
  exclude?: readonly string[];
  /**
   * Weights in 7 bits, [−64, 64] (default), or the full int8 range. x86 CPUs without VNNI (AVX2,
   * AVX-512F) multiply uint8 activations by int8 weights with VPMADDUBSW, which adds each pair of
   * products into a saturating int16: 2 · 255 · 127 overflows it, 2 · 255 · 64 does not. A file
   * does not know where it will run, so it is safe everywhere by default (ORT's `reduce_range`);
   * the full range is for deployments on VNNI/AMX or ARM CPUs only.
   */
  fullRangeWeights?: boolean;
}


export interface QuantizeReport {
  /** The quantised weights: name and [K, N] as the MatMul sees them. */
  weights: { name: string; shape: [number, number] }[];
  perChannel: boolean;
  /** The weights' range, ±64 (7 bits, the default) or ±127. */
  weightQmax: number;
  /** Bytes of weight data before and after. */
  floatWeightBytes: number;
  int8WeightBytes: number;
}

const DT = onnx.TensorProto.DataType;

/** An empty report of a quantisation with these options: per channel by default, weights in ±64 unless fullRangeWeights. */
export function emptyReport(opts: QuantizeOptions): QuantizeReport {
  return { weights: [], perChannel: opts.perChannel ?? true, weightQmax: opts.fullRangeWeights ? 127 : 64, floatWeightBytes: 0, int8WeightBytes: 0 };
}

export interface Matrix { name: string; data: Float32Array; rows: number; cols: number }

export function quantizeDynamicInt8(model: ModelProto, opts: QuantizeOptions = {}): { model: ModelProto; report: QuantizeReport } {
  const exclude = new Set(opts.exclude ?? []);
  const graph = model.graph!;
  const inits = new Map((graph.initializer ?? []).map((t) => [t.name!, t]));
  const producer = new Map<string, NodeProto>();
  for (const n of graph.node ?? []) for (const o of n.output ?? []) producer.set(o, n);
  const newInits: TensorProto[] = [];
  const nodes: NodeProto[] = [];
  const report = emptyReport(opts);
  const { perChannel, weightQmax: qmax } = report;
  const done = new Map<string, { q: string; scale: string; zp: string }>();

  function quantizedWeight(m: Matrix) {
    const hit = done.get(m.name);
    if (hit) return hit;
    const { q, scales } = quantizeColumns(m, perChannel, qmax);
    const names = { q: `${m.name}.int8`, scale: `${m.name}.scale`, zp: `${m.name}.zero_point` };
    const vecDims = perChannel ? [m.cols] : [];
    newInits.push(
      { name: names.q, dataType: DT.INT8, dims: [m.rows, m.cols], rawData: bytesOf(q) },
      { name: names.scale, dataType: DT.FLOAT, dims: vecDims, rawData: bytesOf(scales) },
      { name: names.zp, dataType: DT.INT8, dims: vecDims, rawData: new Uint8Array(scales.length) },
    );
    report.weights.push({ name: m.name, shape: [m.rows, m.cols] });
    report.floatWeightBytes += m.data.byteLength;
    report.int8WeightBytes += q.byteLength + scales.byteLength * 2;
    done.set(m.name, names);
    return names;
  }

  for (const n of graph.node ?? []) {
    const m = n.opType === 'MatMul' && (n.domain ?? '') === '' ? constantMatrix(inits, producer, n.input![1]!) : undefined;
    if (!m || exclude.has(m.name)) {
      nodes.push(n);
      continue;
    }
    const w = quantizedWeight(m);
    const a = n.input![0]!;
    const y = n.output![0]!;
    const base = n.name || y;
    nodes.push(
      node('DynamicQuantizeLinear', [a], [`${y}/a_q`, `${y}/a_scale`, `${y}/a_zp`], `${base}/DynamicQuantizeLinear`),
      node('MatMulInteger', [`${y}/a_q`, w.q, `${y}/a_zp`, w.zp], [`${y}/int32`], `${base}/MatMulInteger`),
      node('Cast', [`${y}/int32`], [`${y}/float`], `${base}/Cast`, [{ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: DT.FLOAT }]),
      node('Mul', [`${y}/a_scale`, w.scale], [`${y}/scale`], `${base}/Scale`),
      node('Mul', [`${y}/float`, `${y}/scale`], [y], `${base}/Dequantize`),
    );
  }

  const rewritten: ModelProto = { ...model, graph: { ...graph, node: nodes, initializer: [...(graph.initializer ?? []), ...newInits] } };
  return { model: pruneUnused(rewritten), report };
}

/** Evaluates `name` when it is a constant float matrix: an initializer or Transpose/Reshape of one. */
export function constantMatrix(inits: Map<string, TensorProto>, producer: Map<string, NodeProto>, name: string): Matrix | undefined {
  const t = inits.get(name);
  if (t) {
    const dims = (t.dims ?? []).map(Number);
    return t.dataType === DT.FLOAT && dims.length === 2 ? { name, data: floatData(t), rows: dims[0]!, cols: dims[1]! } : undefined;
  }
  const n = producer.get(name);
  if (n?.opType === 'Transpose' && (n.domain ?? '') === '') {
    const perm = n.attribute?.find((a) => a.name === 'perm')?.ints?.map(Number) ?? [1, 0];
    const m = constantMatrix(inits, producer, n.input![0]!);
    if (!m || perm.join() !== '1,0') return undefined;
    const out = new Float32Array(m.data.length);
    for (let r = 0; r < m.rows; r++) for (let c = 0; c < m.cols; c++) out[c * m.rows + r] = m.data[r * m.cols + c]!;
    return { name: m.name, data: out, rows: m.cols, cols: m.rows };
  }
  if (n?.opType === 'Reshape' && (n.domain ?? '') === '') {
    const src = inits.get(n.input![0]!);
    const shape = inits.get(n.input![1]!);
    if (!src || !shape || src.dataType !== DT.FLOAT || shape.dataType !== DT.INT64) return undefined;
    const data = floatData(src);
    const target = int64Data(shape);
    const srcDims = (src.dims ?? []).map(Number);
    if (target.length !== 2) return undefined;
    const dims = target.map((d, i) => (d === 0 ? srcDims[i]! : d));
    const known = dims.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
    const [rows, cols] = dims.map((d) => (d === -1 ? data.length / known : d)) as [number, number];
    return rows * cols === data.length ? { name: src.name!, data, rows, cols } : undefined;
  }
  return undefined;
}

/** Symmetric per-column (or per-matrix) quantisation of a weight matrix to [−qmax, qmax]. */
export function quantizeColumns(m: { data: Float32Array; rows: number; cols: number }, perChannel: boolean, qmax: number): { q: Int8Array; scales: Float32Array } {
  const { data, rows, cols } = m;
  const amax = new Float32Array(perChannel ? cols : 1);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const j = perChannel ? c : 0;
      const v = Math.abs(data[r * cols + c]!);
      if (v > amax[j]!) amax[j] = v;
    }
  }
  const scales = amax.map((a) => (a > 0 ? a / qmax : 1));
  const q = new Int8Array(data.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const v = Math.round(data[r * cols + c]! / scales[perChannel ? c : 0]!);
      q[r * cols + c] = v > qmax ? qmax : v < -qmax ? -qmax : v;
    }
  }
  return { q, scales };
}

/** Drops nodes whose outputs nothing reads (the folded weight transposes) and unused initializers. */
export function pruneUnused(model: ModelProto): ModelProto {
  const g = model.graph!;
  const needed = new Set((g.output ?? []).map((o) => o.name!));
  const kept: NodeProto[] = [];
  for (const n of [...(g.node ?? [])].reverse()) {
    if (!(n.output ?? []).some((o) => needed.has(o))) continue;
    kept.push(n);
    for (const i of n.input ?? []) if (i) needed.add(i);
  }
  kept.reverse();
  return { ...model, graph: { ...g, node: kept, initializer: (g.initializer ?? []).filter((t) => needed.has(t.name!)) } };
}

export function node(opType: string, input: string[], output: string[], name: string, attribute: NodeProto['attribute'] = []): NodeProto {
  return { opType, input, output, name, attribute };
}

export function bytesOf(a: Float32Array | Int8Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

export function floatData(t: TensorProto): Float32Array {
  if (t.rawData?.length) {
    const copy = new Uint8Array(t.rawData); // aligned copy (raw_data may sit at any offset of the file)
    return new Float32Array(copy.buffer, 0, copy.byteLength / 4);
  }
  return Float32Array.from(t.floatData ?? []);
}

export function int64Data(t: TensorProto): number[] {
  if (t.rawData?.length) {
    const copy = new Uint8Array(t.rawData);
    return Array.from(new BigInt64Array(copy.buffer, 0, copy.byteLength / 8), Number);
  }
  return (t.int64Data ?? []).map(Number);
}
