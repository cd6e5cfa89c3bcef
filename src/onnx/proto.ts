/** The ONNX protobuf schema (generated static code from `onnx-proto`), re-exported with helpers. */
import onnxProto from 'onnx-proto';
import { onnxDTypeCode, type DType, type HostArray } from '../ir/dtype.js';
import { isBatchDim, type Shape } from '../ir/shape.js';
import type { OnnxAttr } from '../ops/prim.js';

export const onnx = onnxProto.onnx;
export type ModelProto = onnxProto.onnx.IModelProto;
export type NodeProto = onnxProto.onnx.INodeProto;
export type TensorProto = onnxProto.onnx.ITensorProto;
export type ValueInfoProto = onnxProto.onnx.IValueInfoProto;
export type AttributeProto = onnxProto.onnx.IAttributeProto;

const dtypeByCode = new Map(Object.entries(onnxDTypeCode).map(([k, v]) => [v, k as DType]));
export const dtypeFromCode = (code: number): DType | undefined => dtypeByCode.get(code);

export const BATCH_PARAM = 'batch';

export function valueInfo(name: string, dtype: DType, shape: Shape): ValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: onnxDTypeCode[dtype],
        shape: { dim: shape.map((d) => (isBatchDim(d) ? { dimParam: d.batch === 1 ? BATCH_PARAM : `${BATCH_PARAM}*${d.batch}` } : { dimValue: d })) },
      },
    },
  };
}

export function tensorProto(name: string, dtype: DType, dims: readonly number[], data: HostArray): TensorProto {
  // raw_data is little-endian, as are the hosts Node.js runs on.
  const rawData = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return { name, dataType: onnxDTypeCode[dtype], dims: [...dims], rawData };
}

export function attributeProto(name: string, a: OnnxAttr): AttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if ('i' in a) return { name, type: T.INT, i: a.i };
  if ('f' in a) return { name, type: T.FLOAT, f: a.f };
  if ('ints' in a) return { name, type: T.INTS, ints: [...a.ints] };
  if ('floats' in a) return { name, type: T.FLOATS, floats: [...a.floats] };
  return { name, type: T.STRING, s: new TextEncoder().encode(a.s) };
}

export function encodeModel(model: ModelProto): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}

export function decodeModel(bytes: Uint8Array): ModelProto {
  return onnx.ModelProto.decode(bytes);
}
