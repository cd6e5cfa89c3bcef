/** safetensors validation: every malformed file is a one-line error naming the problem, never a crash or a huge allocation. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseSafetensors, readSafetensors, serializeSafetensors, SafetensorsError, toFloat32 } from '../../src/checkpoint/safetensors.js';
import { layoutFixture } from './layout_helpers.js';

function header(obj: unknown, data = new Uint8Array(0)): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(obj));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

describe('malformed safetensors fixtures', () => {
  const cases: [string, RegExp][] = [
    ['overlap.safetensors', /tensors "a" and "b" overlap/],
    ['header_10gb.safetensors', /header length 10737418240 exceeds the file size \(16 bytes\)/],
    ['wrong_dtype_size.safetensors', /tensor "a": F32\[3\] needs 12 bytes, offsets give 6/],
    ['truncated.safetensors', /tensor "a" data_offsets \[0, 12\] fall outside the 5 data bytes/],
    ['not_json.safetensors', /header is not valid JSON/],
  ];
  for (const [file, message] of cases) {
    it(file, () => {
      const path = layoutFixture(file);
      expect(() => readSafetensors(path)).toThrow(SafetensorsError);
      expect(() => readSafetensors(path)).toThrow(message);
      expect(() => readSafetensors(path)).toThrow(path);
    });
  }
});

describe('header validation', () => {
  it.each([
    ['a file shorter than the length field', new Uint8Array(5), /5 bytes, too short/],
    ['a null tensor entry', header({ a: null }), /tensor "a" is described by null/],
    ['a string tensor entry', header({ a: 'x' }), /tensor "a" is described by "x"/],
    ['an unknown dtype', header({ a: { dtype: 'F8', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)), /unsupported dtype "F8"/],
    ['an inherited-property dtype', header({ a: { dtype: 'constructor', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)), /unsupported dtype/],
    ['a negative dimension', header({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4)), /invalid shape/],
    ['reversed offsets', header({ a: { dtype: 'F32', shape: [0], data_offsets: [4, 0] } }, new Uint8Array(4)), /fall outside/],
    ['a huge shape', header({ a: { dtype: 'F32', shape: [1e9, 1e9], data_offsets: [0, 4] } }, new Uint8Array(4)), /needs 4000000000000000000 bytes, offsets give 4/],
    ['a JSON array header', header([1, 2]), /header is not a JSON object/],
    ['metadata that is not strings', header({ __metadata__: { a: 1 } }), /__metadata__\.a must be a string/],
  ])('%s', (_, buf, message) => {
    expect(() => parseSafetensors(buf, 'x.safetensors')).toThrow(message);
  });

  it('round-trips F32 and I64 tensors with metadata, and decodes F16/BF16/F64', () => {
    const bytes = serializeSafetensors({ w: { shape: [2, 2], data: Float32Array.of(1, -2, 3.5, 4) }, n: { shape: [1], data: BigInt64Array.of(7n) } }, { k: 'v' });
    const file = parseSafetensors(bytes);
    expect(Array.from(toFloat32(file.tensors.get('w')!))).toEqual([1, -2, 3.5, 4]);
    expect(file.tensors.get('n')!.dtype).toBe('I64');
    expect(file.metadata).toEqual({ k: 'v' });
    const f16 = { dtype: 'F16' as const, shape: [3], bytes: new Uint8Array(Uint16Array.of(0x3c00, 0xc100, 0x7bff).buffer) };
    expect(Array.from(toFloat32(f16))).toEqual([1, -2.5, 65504]);
    const bf16 = { dtype: 'BF16' as const, shape: [2], bytes: new Uint8Array(Uint16Array.of(0x3f80, 0xc020).buffer) };
    expect(Array.from(toFloat32(bf16))).toEqual([1, -2.5]);
    const f64 = { dtype: 'F64' as const, shape: [1], bytes: new Uint8Array(Float64Array.of(0.25).buffer) };
    expect(Array.from(toFloat32(f64))).toEqual([0.25]);
    expect(() => toFloat32(file.tensors.get('n')!, 'n')).toThrow(/n has dtype I64, expected a float type/);
  });

  it('a valid fixture still parses', () => {
    const file = parseSafetensors(readFileSync(layoutFixture('timm/model.safetensors')));
    expect(file.tensors.get('patch_embed.proj.weight')!.shape).toEqual([32, 3, 8, 8]);
  });
});
