/**
 * The engine alone: tracing, ops, autodiff, ONNX emission and the ORT runtime
 * (`import { compile, ops } from 'tessera/engine'`). It loads none of the toolkit's heavier
 * modules (sharp, fastify, vega): measured, 85–100 ms to import against 500–580 ms for the
 * package root.
 */
export * as ops from './ops/index.js';
export * from './ops/index.js';
export { Tensor } from './ir/tensor.js';
export { Graph } from './ir/graph.js';
export { GraphError, ShapeError } from './ir/errors.js';
export { BATCH, formatShape, type Dim, type Shape } from './ir/shape.js';
export type { DType, HostArray } from './ir/dtype.js';
export { grad } from './autodiff/grad.js';
export { emitModel, DEFAULT_OPSET, type EmitOptions, type EmittedModel } from './onnx/emit.js';
export { dumpModel } from './onnx/dump.js';
export { decodeModel } from './onnx/proto.js';
export {
  compile, compileTraced, trace, withGradients,
  type CompileOptions, type Executable, type Feed, type InputSpec, type TracedFunction,
} from './runtime/compile.js';
export type { HostTensor, SessionOptions, GraphOptimization } from './runtime/session.js';
export { physicalCores } from './runtime/cores.js';
export { Random, type RandomState } from './random.js';
