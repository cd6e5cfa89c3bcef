/**
 * Activation ranges for static int8 quantisation: the fp32 export run by ORT on calibration
 * images with the inputs of its weight matmuls exposed as extra outputs, min and max kept per
 * tensor over all images.
 */
import { onnx, encodeModel, type ModelProto } from '../onnx/proto.js';
import { normalizePixelsOnHost } from '../runtime/host_pixels.js';
import { openSession, type SessionOptions } from '../runtime/session.js';
import type { OnnxModelMeta } from './metadata.js';
import type { ActivationRange } from './quantize_static.js';

export interface CalibrationImages {
  /** uint8 pixels, NHWC (what runPixels takes) */
  pixels: Uint8Array;
  count: number;
}

export async function activationRanges(model: ModelProto, meta: OnnxModelMeta, tensors: readonly string[], images: CalibrationImages,
  opts: { batchSize?: number; session?: SessionOptions } = {}): Promise<Map<string, ActivationRange>> {
  if (images.count < 1) throw new Error('static int8 needs at least one calibration image');
  const wanted = [...new Set(tensors)];
  const graph = model.graph!;
  const extra = wanted.map((name) => ({ name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } } }));
  const probe: ModelProto = { ...model, graph: { ...graph, output: [...(graph.output ?? []), ...extra] } };
  const session = await openSession(encodeModel(probe), opts.session ?? {});
  const [c, h, w] = meta.inputSize;
  const per = c * h * w;
  const batchSize = opts.batchSize ?? 32;
  const ranges = new Map(wanted.map((t) => [t, { min: Infinity, max: -Infinity }]));
  try {
    for (let start = 0; start < images.count; start += batchSize) {
      const n = Math.min(batchSize, images.count - start);
      const px = images.pixels.subarray(start * per, (start + n) * per);
      const feed = meta.inputFormat === 'uint8_nhwc'
        ? { dtype: 'uint8' as const, data: px, shape: [n, h, w, c] }
        : { dtype: 'float32' as const, data: normalizePixelsOnHost(px, meta.inputSize, meta.mean, meta.std), shape: [n, c, h, w] };
      const out = await session.run({ [session.inputNames[0]!]: feed });
      for (const t of wanted) {
        const data = out[t]!.data as Float32Array;
        const r = ranges.get(t)!;
        let lo = r.min;
        let hi = r.max;
        for (let i = 0; i < data.length; i++) {
          const v = data[i]!;
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
        r.min = lo;
        r.max = hi;
      }
    }
  } finally {
    await session.release();
  }
  return ranges;
}
