/**
 * PyTorch files without Python: torch.save's zip and legacy formats (dtypes, strides, storage
 * offsets) and the restricted unpickler, which refuses every global a state dict does not need.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PickleError, unpickle, PyDict } from '../../src/checkpoint/pickle.js';
import { toFloat32 } from '../../src/checkpoint/safetensors.js';
import { parseTorchFile, readTorchFile, serializeTorchFile, TorchFileError } from '../../src/checkpoint/torch_file.js';
import { ZipReader, writeZip } from '../../src/checkpoint/torch_zip.js';
import { goldens, layoutFixture } from './layout_helpers.js';

const valuesOf = (t: { dtype: string; bytes: Uint8Array; shape: number[] }) =>
  t.dtype === 'I64' ? Array.from(new BigInt64Array(t.bytes.slice().buffer), Number) : Array.from(toFloat32(t as never));

describe('torch.save files', () => {
  for (const file of ['tensors.pth', 'tensors_legacy.pth']) {
    it(`${file}: every dtype, a transposed view and a storage offset`, () => {
      const tensors = readTorchFile(layoutFixture(file));
      const want = goldens.tensors as Record<string, { shape: number[]; values: number[] }>;
      expect([...tensors.keys()]).toEqual(Object.keys(want));
      for (const [k, w] of Object.entries(want)) {
        const t = tensors.get(k)!;
        expect(t.shape, k).toEqual(w.shape);
        const got = valuesOf(t);
        w.values.forEach((v, i) => expect(got[i], `${k}[${i}]`).toBeCloseTo(v, 6));
      }
      expect(tensors.get('f16')!.dtype).toBe('F16');
      expect(tensors.get('bf16')!.dtype).toBe('BF16');
    });
  }

  it('writes what it reads (zip, 64-byte aligned, CRC-checked)', () => {
    const original = readTorchFile(layoutFixture('tensors.pth'));
    const bytes = serializeTorchFile([...original], 'roundtrip');
    const zip = new ZipReader(bytes, 'x');
    expect([...zip.entries.keys()]).toEqual(['roundtrip/data.pkl', ...[...original.keys()].map((_, i) => `roundtrip/data/${i}`), 'roundtrip/version']);
    const back = parseTorchFile(bytes);
    for (const [k, t] of original) {
      expect(back.get(k)!.dtype).toBe(t.dtype);
      expect(back.get(k)!.shape).toEqual(t.shape);
      expect(Array.from(back.get(k)!.bytes)).toEqual(Array.from(t.bytes));
    }
  });
});

describe('malicious and malformed pickles', () => {
  const cases: [string, RegExp][] = [
    ['os_system.pth', /the pickle references the global os\.system, which a state dict never needs.*nothing was executed/],
    ['posix_system.pth', /the global posix\.system/],
    ['eval.bin', /the global builtins\.eval/],
    ['subprocess.pth', /the global subprocess\.Popen/],
    ['truncated.pth', /no zip end-of-central-directory record: the file is truncated or not a torch\.save zip archive/],
  ];
  for (const [file, message] of cases) {
    it(file, () => {
      const path = layoutFixture(file);
      expect(() => readTorchFile(path)).toThrow(TorchFileError);
      expect(() => readTorchFile(path)).toThrow(message);
      expect(() => readTorchFile(path)).toThrow(path);
    });
  }

  const run = (bytes: number[]) => unpickle(Uint8Array.from(bytes), { source: 's', globals: {} }).value;
  it.each([
    ['INST', [0x80, 2, 0x28, 0x69, ...Buffer.from('os\nsystem\n'), 0x2e], /opcode 0x69 \(INST\).*not allowed/],
    ['NEWOBJ', [0x80, 2, 0x29, 0x29, 0x81, 0x2e], /opcode 0x81 \(NEWOBJ\)/],
    ['a string longer than the stream', [0x80, 2, 0x58, 0xff, 0xff, 0xff, 0x7f], /truncated pickle: 2147483647 bytes needed/],
    ['an 8-byte length beyond the stream', [0x80, 4, 0x8d, 0, 0, 0, 0, 0, 0, 0, 0x10], /exceeds the 11-byte stream/],
    ['a memo read never written', [0x80, 2, 0x68, 5, 0x2e], /memo index 5 was never stored/],
    ['REDUCE on a non-callable', [0x80, 2, 0x4e, 0x29, 0x52, 0x2e], /REDUCE on None/],
    ['a missing STOP', [0x80, 2, 0x4e], /truncated pickle/],
    ['an empty stack', [0x80, 2, 0x30, 0x2e], /stack underflow/],
  ])('refuses %s', (_, bytes, message) => {
    expect(() => run(bytes)).toThrow(PickleError);
    expect(() => run(bytes)).toThrow(message);
  });

  it('reads plain containers and numbers', () => {
    // {'a': [1, -2, 3.5, True, None, 2**70]} in protocol 2
    const v = run([0x80, 2, 0x7d, 0x58, 1, 0, 0, 0, 0x61, 0x5d, 0x28, 0x4b, 1, 0x4a, 0xfe, 0xff, 0xff, 0xff,
      0x47, 0x40, 0x0c, 0, 0, 0, 0, 0, 0, 0x88, 0x4e, 0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x65, 0x73, 0x2e]) as PyDict;
    expect(v).toBeInstanceOf(PyDict);
    expect(v.get('a')).toEqual([1, -2, 3.5, true, null, 2n ** 70n]);
  });

  it('a corrupt storage is a CRC error, not garbage weights', () => {
    const bytes = new Uint8Array(readFileSync(layoutFixture('tensors.pth')));
    const zip = new ZipReader(bytes, 'x');
    const entry = zip.entries.get('tensors/data/0')!;
    const start = entry.localOffset + 30 + new DataView(bytes.buffer).getUint16(entry.localOffset + 26, true) + new DataView(bytes.buffer).getUint16(entry.localOffset + 28, true);
    bytes[start]! ^= 0xff;
    expect(() => parseTorchFile(bytes, 'corrupt.pth')).toThrow(/CRC mismatch in tensors\/data\/0/);
  });

  it('a tensor reaching past its storage is refused', () => {
    const good = readTorchFile(layoutFixture('tensors.pth'));
    const f32 = good.get('f32')!;
    const bytes = serializeTorchFile([['w', { ...f32, bytes: f32.bytes.subarray(0, 8) }]]);
    // the pickle still claims 6 elements in a 2-element storage
    expect(() => parseTorchFile(bytes, 'short.pth')).toThrow(/storage 0 holds 8 bytes, expected 2 × 4|reach past/);
  });

  it('a zip without data.pkl is not a torch file', () => {
    const bytes = writeZip([{ name: 'a/b.txt', data: new Uint8Array(3) }]);
    expect(() => parseTorchFile(bytes, 'other.zip')).toThrow(/has no <archive>\/data\.pkl/);
  });
});
