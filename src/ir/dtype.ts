/** Element types a tensor can hold, with their ONNX TensorProto codes and host array types. */

export type DType = 'float32' | 'float64' | 'int64' | 'int32' | 'uint8' | 'bool';

export type HostArray = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;

/** ONNX TensorProto.DataType codes. */
export const onnxDTypeCode: Record<DType, number> = {
  float32: 1,
  uint8: 2,
  int32: 6,
  int64: 7,
  bool: 9,
  float64: 11,
};

export const isFloat = (d: DType): boolean => d === 'float32' || d === 'float64';

export function allocHost(dtype: DType, length: number): HostArray {
  switch (dtype) {
    case 'float32': return new Float32Array(length);
    case 'float64': return new Float64Array(length);
    case 'int64': return new BigInt64Array(length);
    case 'int32': return new Int32Array(length);
    case 'uint8':
    case 'bool': return new Uint8Array(length);
  }
}

/** Converts plain numbers (or another typed array) into the host array type for `dtype`. */
export function toHost(dtype: DType, values: ArrayLike<number | bigint>): HostArray {
  const out = allocHost(dtype, values.length);
  if (out instanceof BigInt64Array) {
    for (let i = 0; i < values.length; i++) out[i] = BigInt(values[i] as number);
  } else {
    for (let i = 0; i < values.length; i++) out[i] = Number(values[i]);
  }
  return out;
}

/** A one-element host array holding `value`. */
export function scalarHost(value: number, dtype: DType): HostArray {
  return toHost(dtype, [value]);
}
