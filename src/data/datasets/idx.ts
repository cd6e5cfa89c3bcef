/**
 * IDX files (http://yann.lecun.com/exdb/mnist/), the format of MNIST and Fashion-MNIST, optionally
 * gzip-compressed. Only unsigned-byte tensors are supported: every built-in IDX dataset uses them.
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import type { TensorDataset } from './dataset.js';

export interface IdxTensor {
  /** e.g. [10000, 28, 28] for an image file, [10000] for a label file */
  readonly dims: readonly number[];
  readonly data: Uint8Array;
}

const UBYTE = 0x08;
const TYPE_NAMES: Record<number, string> = { 0x08: 'ubyte', 0x09: 'byte', 0x0b: 'int16', 0x0c: 'int32', 0x0d: 'float32', 0x0e: 'float64' };
const hex32 = (v: number): string => '0x' + (v >>> 0).toString(16).padStart(8, '0');

/** Gunzips when the bytes start with the gzip magic 1f 8b, so `.gz` and plain files both work. */
export function maybeGunzip(bytes: Uint8Array, file: string): Uint8Array {
  if (bytes.length < 2 || bytes[0] !== 0x1f || bytes[1] !== 0x8b) return bytes;
  try {
    return new Uint8Array(gunzipSync(bytes));
  } catch (e) {
    throw new Error(`${file}: corrupt gzip data (${(e as Error).message}); delete the file and fetch it again`);
  }
}

/**
 * Parses an (uncompressed) IDX buffer. `expectedDims` makes a wrong-kind file fail on its magic:
 * a label file passed as images is caught before its bytes are misread.
 */
export function parseIdx(bytes: Uint8Array, file: string, expectedDims?: number): IdxTensor {
  const what = expectedDims === 3 ? ' image' : expectedDims === 1 ? ' label' : '';
  const expected = expectedDims === undefined ? '0x000008NN' : hex32((UBYTE << 8) | expectedDims);
  const expectation = `expected ${expected} for a ${expectedDims ?? 'N'}-D ubyte${what} file`;
  if (bytes.length < 4) throw new Error(`${file}: ${bytes.length}-byte file is too short for an IDX header; ${expectation}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0);
  const type = bytes[2]!;
  const ndims = bytes[3]!;
  if (bytes[0] !== 0 || bytes[1] !== 0 || ndims === 0) throw new Error(`${file}: bad IDX magic ${hex32(magic)}, ${expectation}`);
  if (type !== UBYTE) {
    const name = TYPE_NAMES[type] ?? 'unknown';
    throw new Error(`${file}: IDX element type 0x${type.toString(16).padStart(2, '0')} (${name}) is not supported, ${expectation}`);
  }
  if (expectedDims !== undefined && ndims !== expectedDims) throw new Error(`${file}: bad IDX magic ${hex32(magic)}, ${expectation}`);
  const headerBytes = 4 + 4 * ndims;
  if (bytes.length < headerBytes) {
    throw new Error(`${file}: truncated IDX header, expected ${headerBytes} bytes for ${ndims} dimensions, got ${bytes.length}`);
  }
  const dims: number[] = [];
  for (let d = 0; d < ndims; d++) dims.push(view.getUint32(4 + 4 * d));
  const dataBytes = dims.reduce((a, b) => a * b, 1);
  const expectedTotal = headerBytes + dataBytes;
  if (bytes.length !== expectedTotal) {
    const problem = bytes.length < expectedTotal ? 'truncated' : 'has trailing bytes';
    throw new Error(`${file}: IDX file ${problem}: header says ${dims.join('×')} ubyte, expected ${expectedTotal} bytes, got ${bytes.length}`);
  }
  return { dims, data: bytes.subarray(headerBytes) };
}

export function readIdxFile(path: string, expectedDims?: number): IdxTensor {
  return parseIdx(maybeGunzip(readFileSync(path), path), path, expectedDims);
}

export interface IdxSplitOptions {
  /** Dataset name, e.g. 'fashion-mnist/test'. */
  name: string;
  classNames: readonly string[];
}

/** An MNIST-style split: an N×H×W image file and an N-label file whose labels index `classNames`. */
export function loadIdxSplit(imagesPath: string, labelsPath: string, opts: IdxSplitOptions): TensorDataset {
  const images = readIdxFile(imagesPath, 3);
  const labels = readIdxFile(labelsPath, 1);
  const [n, h, w] = images.dims as [number, number, number];
  if (labels.dims[0] !== n) {
    throw new Error(`${labelsPath}: ${labels.dims[0]} labels, but ${imagesPath} has ${n} images; expected the same count`);
  }
  const classes = opts.classNames.length;
  for (let i = 0; i < n; i++) {
    const label = labels.data[i]!;
    if (label >= classes) throw new Error(`${labelsPath}: label ${label} at index ${i} is out of range, expected 0..${classes - 1} (${classes} classes)`);
  }
  return {
    name: opts.name,
    images: images.data,
    labels: labels.data,
    imageShape: [1, h, w],
    classNames: opts.classNames,
    length: n,
  };
}
