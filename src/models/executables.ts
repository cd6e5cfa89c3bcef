/**
 * The inference executable of any model: images [B, C, H, W] → logits. By default the parameters
 * and buffers are inputs, so other weights of the same names (the EMA) can be fed in their place;
 * a caller whose weights stay as they are passes `params: frozenWeights(model)`.
 */
import { div } from '../ops/elementwise.js';
import { compile, type Executable } from '../runtime/compile.js';
import type { SessionOptions } from '../runtime/session.js';
import type { EmitOptions } from '../onnx/emit.js';
import type { ImageModel } from './model.js';

/** ONNX is one protobuf message, which cannot exceed 2 GiB; the graph's nodes and constants need some room beside the weights. */
const MAX_INITIALIZER_BYTES = 1.75 * 2 ** 30;

/**
 * Where an executable that never sees other weights keeps them: in the graph as initializers,
 * when they fit in one ONNX file. ORT then packs each MatMul's constant weight once, when the
 * session opens, and folds the weight transposes; fed as inputs, every run packs them again (the
 * CLIP ViT-B-32 image tower at batch 8 ran ≈ 10% slower on one thread, BENCHMARKS.md's CLIP
 * zero-shot section). Larger models keep them as inputs.
 */
export function frozenWeights(model: ImageModel, maxBytes = MAX_INITIALIZER_BYTES): NonNullable<EmitOptions['params']> {
  const bytes = [...model.namedParameters(), ...model.namedBuffers()].reduce((n, [, p]) => n + p.data.byteLength, 0);
  return bytes <= maxBytes ? 'initializers' : 'inputs';
}

/** `temperature` (a calibrated checkpoint's) divides the logits inside the graph, as the export does. */
export async function compileInference(model: ImageModel, session: SessionOptions & Pick<EmitOptions, 'params'> = {}, temperature?: number): Promise<Executable> {
  const [c, h, w] = model.inputShape;
  const scaled = temperature !== undefined && temperature !== 1;
  return compile((x) => {
    const logits = model.forward(x).logits;
    return { logits: scaled ? div(logits, temperature) : logits };
  }, [{ name: 'x', shape: ['batch', c, h, w] }], session);
}
