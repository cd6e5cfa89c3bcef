/** The export variants bench/int8_inference.ts compares, by name. */
import { quantizeExport, quantizeStaticExport, type ExportedModel } from '../src/export/export.js';
import { fuseAttention } from '../src/export/fuse_attention.js';
import { samplePixels } from '../src/export/verify.js';
import { nchwToNhwc } from '../src/runtime/host_pixels.js';
import { encodeModel } from '../src/onnx/proto.js';

export const INT8_VARIANTS = ['fp32', 'fp32-mha', 'dynamic', 'dynamic-mha', 'static', 'static-mha'];

const withMha = (m: ExportedModel): ExportedModel => {
  const f = fuseAttention(m.model);
  if (f.fused === 0) throw new Error('no attention core matched');
  return { ...m, model: f.model, bytes: encodeModel(f.model) };
};

/** Static variants calibrate on seeded random pixels: enough for timing (accuracy is measured elsewhere). */
async function staticInt8(fp32: ExportedModel, images: number): Promise<ExportedModel> {
  const s = samplePixels(fp32.meta.inputSize, images);
  return quantizeStaticExport(fp32, { pixels: nchwToNhwc(s.pixels, s.shape), count: s.count }, { session: { threads: 1 } });
}

export async function int8Variant(name: string, fp32: ExportedModel, o: { calibrationImages: number }): Promise<ExportedModel> {
  switch (name) {
    case 'fp32': return fp32;
    case 'fp32-mha': return withMha(fp32);
    case 'dynamic': return quantizeExport(fp32);
    case 'dynamic-mha': return withMha(quantizeExport(fp32));
    case 'static': return staticInt8(fp32, o.calibrationImages);
    case 'static-mha': return withMha(await staticInt8(fp32, o.calibrationImages));
    default: throw new Error(`unknown variant ${name}`);
  }
}
