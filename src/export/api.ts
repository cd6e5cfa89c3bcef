/** Deployment: ONNX export with metadata, int8 quantisation, verification, and loading exported files. */
export { exportModel, quantizeExport, INPUT_NAME, OUTPUT_NAME, type ExportOptions, type ExportedModel } from './export.js';
export { quantizeDynamicInt8, type QuantizeOptions, type QuantizeReport } from './quantize.js';
export { checkAgainstTessera, accuracyOn, inferenceSpeed, compareInt8 } from './verify.js';
export { decodeMetadata, encodeMetadata, evalTransformOf, ATTENTION_MAP_NAME, type OnnxModelMeta } from './metadata.js';
export { attentionMapGraph } from './attention_map.js';
export { loadOnnxModel, inspectOnnxModel, type OnnxModel } from '../runtime/onnx_model.js';
