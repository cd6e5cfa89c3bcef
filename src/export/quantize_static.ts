/**
 * Static int8 quantisation (QDQ) of an ONNX model's weight matmuls, with activation ranges
 * measured beforehand on calibration images (calibration_ranges.ts).
 *
 * Every `MatMul(A, W)` whose W is a constant matrix (as quantize.ts finds them) becomes
 *
 *   A' = DequantizeLinear(QuantizeLinear(A, a_scale, a_zp))      // uint8, per tensor, fixed scale
 *   W' = DequantizeLinear(Wq, w_scale, 0, axis 1)                 // int8, per output channel
 *   Y  = MatMul(A', W')
 *
 * This is the standard ONNX "QDQ" form (QuantizeLinear/DequantizeLinear since opset 13 with
 * per-axis scales): the file passes onnx.checker and runs anywhere, while ORT's QDQ optimiser
 * replaces each DQ → MatMul → float output with its integer kernel (MatMulIntegerToFloat on
 * CPU), so A is quantised with the stored scale instead of the two passes of
 * DynamicQuantizeLinear (min/max, then quantise) on every batch.
 *
 * Activations are uint8 with a zero point (LayerNorm and GELU outputs are not symmetric),
 * weights int8 symmetric (7 bits unless asked, as the dynamic path: QuantizeOptions.fullRangeWeights):
 * the u8·s8 products ORT's x86 kernels are built for.
 */
import { onnx, type ModelProto, type NodeProto, type TensorProto } from '../onnx/proto.js';
import { bytesOf, constantMatrix, emptyReport, floatData, node, pruneUnused, quantizeColumns, type Matrix, type QuantizeOptions, type QuantizeReport } from './quantize.js';

const DT = onnx.TensorProto.DataType;

/** An activation's observed range over the calibration images. */
export interface ActivationRange { min: number; max: number }

/** The weight matmuls of a model and the activation each one multiplies (its A). */
export function weightMatmulInputs(model: ModelProto, exclude: readonly string[] = []): { node: NodeProto; activation: string; weight: Matrix }[] {
  const graph = model.graph!;
  const inits = new Map((graph.initializer ?? []).map((t) => [t.name!, t]));
  const producer = new Map<string, NodeProto>();
  for (const n of graph.node ?? []) for (const o of n.output ?? []) producer.set(o, n);
  const skip = new Set(exclude);
  const found = [];
  for (const n of graph.node ?? []) {
    if (n.opType !== 'MatMul' || (n.domain ?? '') !== '') continue;
    const weight = constantMatrix(inits, producer, n.input![1]!);
    if (weight && !skip.has(weight.name)) found.push({ node: n, activation: n.input![0]!, weight });
  }
  return found;
}

/** Asymmetric uint8 parameters covering [min, max] (widened to hold 0, so that 0 is exact). */
export function activationQuantParams(r: ActivationRange): { scale: number; zeroPoint: number } {
  const lo = Math.min(r.min, 0);
  const hi = Math.max(r.max, 0);
  const scale = hi > lo ? (hi - lo) / 255 : 1;
  const zeroPoint = Math.min(255, Math.max(0, Math.round(-lo / scale)));
  return { scale, zeroPoint };
}

export function quantizeStaticInt8(model: ModelProto, ranges: ReadonlyMap<string, ActivationRange>, opts: QuantizeOptions = {}): { model: ModelProto; report: QuantizeReport } {
  const graph = model.graph!;
  const targets = new Map(weightMatmulInputs(model, opts.exclude).map((t) => [t.node, t]));
  const report = emptyReport(opts);
  const { perChannel, weightQmax: qmax } = report;
  const newInits: TensorProto[] = [];
  const weightDq = new Map<string, string>();
  const weightScales = new Map<string, Float32Array>();
  const activationDq = new Map<string, string>();
  const nodes: NodeProto[] = [];

  const dequantizedWeight = (m: Matrix): string => {
    const hit = weightDq.get(m.name);
    if (hit) return hit;
    const { q, scales } = quantizeColumns(m, perChannel, qmax);
    const vecDims = perChannel ? [m.cols] : [];
    const [qName, scale, zp, out] = ['int8', 'scale', 'zero_point', 'dequantized'].map((s) => `${m.name}.${s}`) as [string, string, string, string];
    newInits.push(
      { name: qName, dataType: DT.INT8, dims: [m.rows, m.cols], rawData: bytesOf(q) },
      { name: scale, dataType: DT.FLOAT, dims: vecDims, rawData: bytesOf(scales) },
      { name: zp, dataType: DT.INT8, dims: vecDims, rawData: new Uint8Array(scales.length) },
    );
    nodes.push(node('DequantizeLinear', [qName, scale, zp], [out], `${m.name}/DequantizeLinear`, perChannel ? [intAttr('axis', 1)] : []));
    report.weights.push({ name: m.name, shape: [m.rows, m.cols] });
    report.floatWeightBytes += m.data.byteLength;
    report.int8WeightBytes += q.byteLength + scales.byteLength * 2;
    weightDq.set(m.name, out);
    weightScales.set(m.name, scales);
    return out;
  };

  const dequantizedActivation = (a: string): string => {
    const hit = activationDq.get(a);
    if (hit) return hit;
    const range = ranges.get(a);
    if (!range) throw new Error(`static int8: no calibration range for activation "${a}"`);
    const { scale, zeroPoint } = activationQuantParams(range);
    const [s, zp, q, dq] = ['scale', 'zero_point', 'uint8', 'dequantized'].map((x) => `${a}/act_${x}`) as [string, string, string, string];
    newInits.push(
      { name: s, dataType: DT.FLOAT, dims: [], rawData: bytesOf(Float32Array.of(scale)) },
      { name: zp, dataType: DT.UINT8, dims: [], rawData: Uint8Array.of(zeroPoint) },
    );
    nodes.push(
      node('QuantizeLinear', [a, s, zp], [q], `${a}/QuantizeLinear`),
      node('DequantizeLinear', [q, s, zp], [dq], `${a}/DequantizeLinear`),
    );
    activationDq.set(a, dq);
    return dq;
  };

  // the bias Add after each quantised MatMul, when its other operand is a float vector of N
  const inits = new Map((graph.initializer ?? []).map((t) => [t.name!, t]));
  const biasAdds = new Map<NodeProto, { matmul: NodeProto; biasIndex: number }>();
  for (const n of graph.node ?? []) {
    if (n.opType !== 'Add' || (n.domain ?? '') !== '') continue;
    for (const [i, j] of [[0, 1], [1, 0]] as const) {
      const mm = [...targets.keys()].find((m) => m.output![0] === n.input![i]);
      const b = inits.get(n.input![j]!);
      if (mm && b && b.dataType === DT.FLOAT && (b.dims ?? []).length === 1 && Number(b.dims![0]) === targets.get(mm)!.weight.cols) biasAdds.set(n, { matmul: mm, biasIndex: j });
    }
  }
  const scales = new Map<NodeProto, { a: number; w: Float32Array }>();

  for (const n of graph.node ?? []) {
    const t = targets.get(n);
    const bias = biasAdds.get(n);
    if (bias) {
      // int32 bias at scale a_scale · w_scale[j]: the form ORT's QDQ Gemm fusion (QGemm) accepts
      const sc = scales.get(bias.matmul)!;
      const b = floatData(inits.get(n.input![bias.biasIndex]!)!);
      const bs = Float32Array.from(sc.w.length === 1 ? b.map(() => sc.a * sc.w[0]!) : sc.w.map((w) => sc.a * w));
      const bq = Int32Array.from(b, (v, j) => Math.round(v / bs[j]!));
      const base = n.input![bias.biasIndex]!;
      newInits.push(
        { name: `${base}.int32`, dataType: DT.INT32, dims: [b.length], rawData: new Uint8Array(bq.buffer) },
        { name: `${base}.scale`, dataType: DT.FLOAT, dims: [b.length], rawData: bytesOf(bs) },
      );
      nodes.push(node('DequantizeLinear', [`${base}.int32`, `${base}.scale`], [`${base}.dequantized`], `${base}/DequantizeLinear`, [intAttr('axis', 0)]));
      const input = [...n.input!];
      input[bias.biasIndex] = `${base}.dequantized`;
      nodes.push({ ...n, input });
      continue;
    }
    if (!t) {
      nodes.push(n);
      continue;
    }
    const a = dequantizedActivation(t.activation);
    const w = dequantizedWeight(t.weight);
    scales.set(n, { a: activationQuantParams(ranges.get(t.activation)!).scale, w: weightScales.get(t.weight.name)! });
    nodes.push({ ...n, input: [a, w] });
  }
  const rewritten: ModelProto = { ...model, graph: { ...graph, node: nodes, initializer: [...(graph.initializer ?? []), ...newInits] } };
  return { model: pruneUnused(rewritten), report };
}

const intAttr = (name: string, i: number) => ({ name, type: onnx.AttributeProto.AttributeType.INT, i });
