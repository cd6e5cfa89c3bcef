/**
 * safetensors: an 8-byte little-endian header length, a JSON header of
 * `{ name: { dtype, shape, data_offsets: [begin, end] }, __metadata__?: { str: str } }`, then the
 * tensor bytes. Reading validates the header before touching data, so a malformed file gives
 * an error instead of a crash or a huge allocation.
 */
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from './atomic.js';
import { oneLine, quote, quoteName } from '../quote.js';

export type SafeDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';
export const DTYPE_BYTES: Record<SafeDType, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };
const BYTES = DTYPE_BYTES;
/** Headers beyond this are not state dicts; refuse before allocating. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface SafeTensor { dtype: SafeDType; shape: number[]; bytes: Uint8Array }
export interface SafeFile { tensors: Map<string, SafeTensor>; metadata: Record<string, string> }

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

export function parseSafetensors(buf: Uint8Array, source = 'safetensors data'): SafeFile {
  const fail = (msg: string): never => { throw new SafetensorsError(`${source}: ${msg}`); };
  if (buf.byteLength < 8) fail(`file is ${buf.byteLength} bytes, too short for a header`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const headerLen = view.getBigUint64(0, true);
  if (headerLen > BigInt(Math.min(MAX_HEADER_BYTES, buf.byteLength - 8))) {
    fail(`header length ${headerLen} exceeds the file size (${buf.byteLength} bytes) or the ${MAX_HEADER_BYTES}-byte limit`);
  }
  const n = Number(headerLen);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(8, 8 + n)));
  } catch (e) {
    return fail(`header is not valid JSON (${oneLine((e as Error).message)})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('header is not a JSON object');
  const dataStart = 8 + n;
  const dataLen = buf.byteLength - dataStart;
  const metadata: Record<string, string> = {};
  const spans: [number, number, string][] = [];
  const tensors = new Map<string, SafeTensor>();
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) fail('__metadata__ must be an object of strings');
      for (const [k, v] of Object.entries(entry as object)) {
        if (typeof v !== 'string') fail(`__metadata__.${quoteName(k)} must be a string`);
        metadata[k] = v as string;
      }
      continue;
    }
    const q = quote(name, 200); // names and values from the file, quoted on one line
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) fail(`tensor ${q} is described by ${quote(entry)}, expected { dtype, shape, data_offsets }`);
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = e.dtype as SafeDType;
    if (!(typeof dtype === 'string' && Object.hasOwn(BYTES, dtype))) fail(`tensor ${q} has unsupported dtype ${quote(e.dtype)}`);
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(`tensor ${q} has an invalid shape`);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(`tensor ${q} has invalid data_offsets`);
    const [begin, end] = off as [number, number];
    if (begin > end || end > dataLen) fail(`tensor ${q} data_offsets [${begin}, ${end}] fall outside the ${dataLen} data bytes`);
    const count = (shape as number[]).reduce((a, b) => a * b, 1);
    if (count * BYTES[dtype] !== end - begin) {
      fail(`tensor ${q}: ${dtype}[${(shape as number[]).join(', ')}] needs ${count * BYTES[dtype]} bytes, offsets give ${end - begin}`);
    }
    spans.push([begin, end, name]);
    tensors.set(name, { dtype, shape: shape as number[], bytes: buf.subarray(dataStart + begin, dataStart + end) });
  }
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i]![0] < spans[i - 1]![1]) fail(`tensors ${quote(spans[i - 1]![2], 200)} and ${quote(spans[i]![2], 200)} overlap`);
  }
  return { tensors, metadata };
}

export function readSafetensors(path: string): SafeFile {
  return parseSafetensors(readFileSync(path), path);
}

/** Decodes any float tensor to float32 (F16/BF16/F64 are converted). */
export function toFloat32(t: SafeTensor, name = 'tensor'): Float32Array {
  const count = t.shape.reduce((a, b) => a * b, 1);
  const b = t.bytes;
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out = new Float32Array(count);
  switch (t.dtype) {
    case 'F32':
      // little-endian hosts: a byte copy is the decode
      new Uint8Array(out.buffer).set(b);
      return out;
    case 'F64':
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(8 * i, true);
      return out;
    case 'F16':
      for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16(2 * i, true));
      return out;
    case 'BF16': {
      const u32 = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) u32[i] = view.getUint16(2 * i, true) << 16;
      return out;
    }
    default:
      throw new SafetensorsError(`${name} has dtype ${t.dtype}, expected a float type`);
  }
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

export interface TensorToWrite { dtype?: 'F32' | 'I64'; shape: readonly number[]; data: Float32Array | BigInt64Array }

/** Serialises tensors (in the given order) and string metadata. */
export function serializeSafetensors(tensors: Record<string, TensorToWrite>, metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  const entries = Object.entries(tensors);
  for (const [name, t] of entries) {
    const bytes = t.data.byteLength;
    header[name] = { dtype: t.dtype ?? (t.data instanceof BigInt64Array ? 'I64' : 'F32'), shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let pos = 8 + headerBytes.length;
  for (const [, t] of entries) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), pos);
    pos += t.data.byteLength;
  }
  return out;
}

export function writeSafetensors(path: string, tensors: Record<string, TensorToWrite>, metadata: Record<string, string> = {}): void {
  writeFileAtomic(path, serializeSafetensors(tensors, metadata));
}
