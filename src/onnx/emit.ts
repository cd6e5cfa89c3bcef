/**
 * Lowers a traced graph to an ONNX model: one pass over the reachable nodes in topological
 * order, each lowered by its primitive's emission rule.
 */
import { scalarHost, type DType } from '../ir/dtype.js';
import { GraphError } from '../ir/errors.js';
import type { Graph, Node, OpNode, ParamSource } from '../ir/graph.js';
import { isBatchDim, isStatic, type Shape } from '../ir/shape.js';
import type { Tensor } from '../ir/tensor.js';
import type { EmitContext, OnnxAttr, Prim } from '../ops/prim.js';
import { ruleFor } from '../ops/rules.js';
import {
  attributeProto, encodeModel, tensorProto, valueInfo, type ModelProto, type NodeProto, type TensorProto, type ValueInfoProto,
} from './proto.js';

export const DEFAULT_OPSET = 17;
export const IR_VERSION = 8;

export interface EmitOptions {
  /** ONNX opset (17 to 21). */
  opset?: number;
  /** Parameters become graph inputs (fed on every run, e.g. for training) or baked-in initializers. */
  params?: 'inputs' | 'initializers';
  graphName?: string;
  /** Key/value pairs stored in the model's metadata_props. */
  metadata?: Record<string, string>;
}

export interface EmittedModel {
  model: ModelProto;
  bytes: Uint8Array;
  /** Graph inputs in order: user inputs, then parameters when `params` is 'inputs'. */
  inputs: { name: string; dtype: DType; shape: Shape; param?: ParamSource }[];
  outputs: { name: string; dtype: DType; shape: Shape }[];
}

export function emitModel(graph: Graph, outputs: Record<string, Tensor>, opts: EmitOptions = {}): EmittedModel {
  const opset = opts.opset ?? DEFAULT_OPSET;
  if (!(Number.isInteger(opset) && opset >= 17 && opset <= 21)) throw new GraphError(`opset must be an integer from 17 to 21, got ${opset}`);
  const paramsAsInputs = (opts.params ?? 'inputs') === 'inputs';
  const outputEntries = Object.entries(outputs);
  if (outputEntries.length === 0) throw new GraphError('emitModel: no outputs');
  for (const [name, t] of outputEntries) {
    if (t.graph !== graph) throw new GraphError(`output "${name}" belongs to another graph`);
  }

  const live = reachable(graph, outputEntries.map(([, t]) => t.id));
  const nodes: NodeProto[] = [];
  const initializers: TensorProto[] = [];
  const inputs: EmittedModel['inputs'] = [];
  const nameOf = (n: Node): string =>
    n.kind === 'input' || n.kind === 'param' ? n.name : n.kind === 'constant' ? `c${n.id}` : `t${n.id}`;

  let scope = '';
  let counter = 0;
  const cache = new Map<string, string>();
  const memo = (key: string, make: () => string) => {
    let name = cache.get(key);
    if (!name) cache.set(key, (name = make()));
    return name;
  };
  const batchSource = graph.inputs().find((n) => n.shape.some(isBatchDim));

  const ctx: EmitContext = {
    opset,
    op(opType: string, ins: readonly string[], attrs: Record<string, OnnxAttr> = {}, output?: string | readonly string[]) {
      const k = counter++;
      const outs = typeof output === 'object' ? [...output] : [output ?? `v${k}`];
      const out = outs[0]!;
      nodes.push({
        name: `${scope ? `${scope}/` : ''}${opType}_${k}`,
        opType,
        input: [...ins],
        output: outs,
        attribute: Object.entries(attrs).map(([n, a]) => attributeProto(n, a)),
      });
      return out;
    },
    int64s: (values) => memo(`i64:${values.join(',')}`, () => {
      const name = `k${counter++}`;
      initializers.push(tensorProto(name, 'int64', [values.length], BigInt64Array.from(values, BigInt)));
      return name;
    }),
    scalar: (value, dtype) => memo(`s:${dtype}:${value}`, () => {
      const name = `k${counter++}`;
      initializers.push(tensorProto(name, dtype, [], scalarHost(value, dtype)));
      return name;
    }),
    shape: (dims) => {
      if (isStatic(dims)) return ctx.int64s(dims);
      return memo(`shape:${JSON.stringify(dims)}`, () => {
        const parts: string[] = [];
        let run: number[] = [];
        const flush = () => { if (run.length) parts.push(ctx.int64s(run)); run = []; };
        for (const d of dims) {
          if (!isBatchDim(d)) { run.push(d); continue; }
          flush();
          parts.push(d.batch === 1 ? batchSize() : ctx.op('Mul', [batchSize(), ctx.int64s([d.batch])]));
        }
        flush();
        return ctx.op('Concat', parts, { axis: { i: 0 } });
      });
    },
  };

  /** The run-time batch size as a 1-D int64 tensor, read from the first batched input. */
  function batchSize(): string {
    return memo('batch', () => {
      if (!batchSource) throw new GraphError('a batch-sized shape is needed but no input has a batch dimension');
      const axis = batchSource.shape.findIndex(isBatchDim);
      const coef = (batchSource.shape[axis] as { batch: number }).batch;
      const saved = scope;
      scope = '';
      let b = ctx.op('Shape', [batchSource.name], { start: { i: axis }, end: { i: axis + 1 } });
      if (coef !== 1) b = ctx.op('Div', [b, ctx.int64s([coef])]);
      scope = saved;
      return b;
    });
  }

  const emitOp = (n: OpNode) => {
    scope = n.scope;
    const ins = emittedInputs(graph, n).map((i) => graph.node(i));
    ruleFor(n.prim as Prim).emit(ctx, {
      inputs: ins.map(nameOf),
      out: nameOf(n),
      attrs: n.attrs as never,
      inTypes: ins,
      outType: n,
    });
  };
  const order = emissionOrder(graph, live, outputEntries.map(([, t]) => t.id));
  for (const n of graph.nodes) {
    if (n.kind === 'input') {
      inputs.push({ name: n.name, dtype: n.dtype, shape: n.shape });
      continue;
    }
    if (!live.has(n.id)) continue;
    if (n.kind === 'param') {
      if (paramsAsInputs) inputs.push({ name: n.name, dtype: n.dtype, shape: n.shape, param: n.source });
      else initializers.push(tensorProto(n.name, n.dtype, n.shape as number[], n.source.data));
    } else if (n.kind === 'constant') {
      initializers.push(tensorProto(nameOf(n), n.dtype, n.shape as number[], n.data));
    }
  }
  const graphOutputs: ValueInfoProto[] = [];
  const outs: EmittedModel['outputs'] = [];
  const outputsOf = new Map<number, [string, Tensor][]>();
  for (const entry of outputEntries) pushTo(outputsOf, entry[1].id, entry);
  for (const id of order.shared) emitOp(graph.node(id) as OpNode);
  for (const tail of order.tails) {
    for (const id of tail.nodes) emitOp(graph.node(id) as OpNode);
    scope = '';
    for (const [name, t] of outputsOf.get(tail.output) ?? []) ctx.op('Identity', [nameOf(t.node)], {}, name);
  }
  scope = '';
  for (const [name, t] of outputEntries) {
    graphOutputs.push(valueInfo(name, t.dtype, t.shape));
    outs.push({ name, dtype: t.dtype, shape: t.shape });
  }

  const model: ModelProto = {
    irVersion: IR_VERSION,
    producerName: 'tessera',
    opsetImport: [{ domain: '', version: opset }],
    graph: {
      name: opts.graphName ?? 'tessera',
      node: nodes,
      initializer: initializers,
      input: inputs.map((i) => valueInfo(i.name, i.dtype, i.shape)),
      output: graphOutputs,
    },
    metadataProps: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value })),
  };
  return { model, bytes: encodeModel(model), inputs, outputs: outs };
}

/**
 * The order ops are written in. ORT (1.30, default execution order) runs a graph in the
 * post-order of a depth-first walk from the leaf nodes, the leaf with the highest node index
 * first. In a training graph the leaves are the gradient outputs' producers. Written in trace
 * order, the first layer's gradient is the highest leaf: ORT computes it first, through the
 * whole backward chain, while the weight gradients of the other layers wait for the end, each
 * holding its saved input and its cotangent (cvt_13 at batch 32: 4.4 GB in use at the peak
 * against 3.5 GB of values live in trace order). So each output's private tail (the ops only it
 * reads) is written after everything shared, the tails in reverse trace order: the last layer's
 * weight gradient, traced first, is the highest leaf, and ORT computes each weight gradient as
 * soon as its cotangent exists (peak in use 3.6 GB). This needs the leaves to keep their
 * indices: compile() turns off ORT's ReshapeFusion for gradient graphs, which rebuilds the
 * Reshape ending most parameter gradients as a new node with a higher index. A graph with one
 * output is written in trace order.
 */
function emissionOrder(graph: Graph, live: Set<number>, outputIds: readonly number[]): { shared: number[]; tails: { output: number; nodes: number[] }[] } {
  const outputSet = new Set(outputIds);
  // owner: the output whose private tail a node belongs to; -1 shared by several outputs
  const owner = new Map<number, number>();
  const consumers = new Map<number, number[]>();
  for (const id of live) {
    const n = graph.node(id);
    if (n.kind !== 'op') continue;
    for (const i of emittedInputs(graph, n)) pushTo(consumers, i, id);
  }
  const ops = [...live].filter((id) => graph.node(id).kind === 'op').sort((a, b) => a - b);
  for (let k = ops.length - 1; k >= 0; k--) {
    const id = ops[k]!;
    const readers = consumers.get(id) ?? [];
    const owners = new Set(readers.map((r) => owner.get(r)!));
    if (outputSet.has(id)) owners.add(id);
    owner.set(id, owners.size === 1 ? [...owners][0]! : -1);
  }
  const shared: number[] = [];
  const tails = new Map<number, number[]>();
  for (const id of ops) {
    const o = owner.get(id)!;
    if (o === -1) shared.push(id);
    else pushTo(tails, o, id);
  }
  // outputs that are leaves or inputs (no op of their own) still need their Identity
  for (const id of outputIds) if (!tails.has(id)) tails.set(id, []);
  const byTrace = [...tails].sort(([a], [b]) => b - a).map(([output, nodes]) => ({ output, nodes }));
  return { shared, tails: byTrace };
}

function pushTo<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function reachable(graph: Graph, roots: number[]): Set<number> {
  const seen = new Set<number>();
  const stack = [...roots];
  while (stack.length) {
    const id = stack.pop()!;
    if (seen.has(id)) continue;
    seen.add(id);
    const n = graph.node(id);
    if (n.kind === 'op') stack.push(...emittedInputs(graph, n));
  }
  return seen;
}

/**
 * The nodes an op reads in the emitted model: a reshape of a reshape reads the first reshape's
 * input, so a chain is one Reshape node (a reshape between a MatMul and its bias Add would keep
 * ORT from fusing them into a Gemm). Done here, not while tracing, so that autodiff still sees
 * the intermediate tensor as used (a gradient with respect to it must not vanish).
 */
function emittedInputs(graph: Graph, n: OpNode): readonly number[] {
  if (n.prim !== 'reshape') return n.inputs;
  let source = graph.node(n.inputs[0]!);
  while (source.kind === 'op' && source.prim === 'reshape') source = graph.node(source.inputs[0]!);
  return [source.id];
}
