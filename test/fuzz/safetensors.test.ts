/**
 * Fuzzing the safetensors reader: mutations of real files (timm's, a tessera checkpoint, small
 * ones of every dtype), headers rewritten field by field with hostile values, and random bytes.
 * Any input gives tensors that lie inside the file and match their dtype × shape, or a
 * SafetensorsError; nothing is allocated from a length field.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DTYPE_BYTES, parseSafetensors, SafetensorsError, serializeSafetensors, toFloat32, type SafeFile } from '../../src/checkpoint/safetensors.js';
import { fixturePath } from '../helpers/fixtures.js';
import { expectAllowed, fc, fuzz, mutatedBytes, peakRss, RSS_GROWTH_LIMIT, timeout, utf8 } from './helpers.js';

const small = serializeSafetensors({
  w: { shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) },
  step: { dtype: 'I64', shape: [], data: BigInt64Array.from([7n]) },
  empty: { shape: [0, 4], data: new Float32Array(0) },
}, { format: 'pt', tessera: JSON.stringify({ model: 'x', classNames: ['a', 'b'] }) });

/** One tensor of each dtype, written by hand (the writer only does F32 and I64). */
function everyDtype(): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let off = 0;
  for (const [dtype, size] of Object.entries(DTYPE_BYTES)) {
    header[dtype.toLowerCase()] = { dtype, shape: [3], data_offsets: [off, off + 3 * size] };
    off += 3 * size;
  }
  const json = utf8(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  for (let i = 8 + json.length; i < out.length; i++) out[i] = (i * 37) & 0x7f;
  return out;
}

const corpus = [
  readFileSync(fixturePath('layouts/timm_avg_noembed.safetensors')),
  readFileSync(fixturePath('legacy/full.safetensors')),
  readFileSync(fixturePath('layouts/overlap.safetensors')),
  readFileSync(fixturePath('layouts/wrong_dtype_size.safetensors')),
  small,
  everyDtype(),
].map((b) => new Uint8Array(b));

/** A result is well formed: every tensor's bytes are dtype × shape and decode (floats) or are refused by toFloat32. */
function wellFormed(input: Uint8Array) {
  return (f: SafeFile) => {
    for (const [name, t] of f.tensors) {
      const count = t.shape.reduce((a, b) => a * b, 1);
      expect(t.bytes.byteLength, name).toBe(count * DTYPE_BYTES[t.dtype]);
      expect(t.bytes.buffer, name).toBe(input.buffer); // a view of the file, not a copy sized by the header
      expectAllowed(`toFloat32(${name})`, () => toFloat32(t, name), { errors: [SafetensorsError], inputBytes: t.bytes.byteLength });
    }
    for (const v of Object.values(f.metadata)) expect(typeof v).toBe('string');
  };
}

const parse = (b: Uint8Array) => expectAllowed('parseSafetensors', () => parseSafetensors(b, 'fuzz.safetensors'), {
  errors: [SafetensorsError], inputBytes: b.byteLength, check: wellFormed(b),
});

/** Rebuilds a file around a header object (the length prefix kept right), with `data` bytes after it. */
function withHeader(header: unknown, data: Uint8Array): Uint8Array {
  const json = utf8(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

const hostile = fc.oneof(
  fc.constantFrom(-1, 0, 1, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 60, 1e308, -0, 0.5, 'F32', '', null, true, [], {}, [0], [0, 0, 0], [2 ** 53, 2 ** 53], [-1, 4], [4, 0]),
  fc.jsonValue({ maxDepth: 3 }),
  fc.array(fc.integer({ min: -2, max: 2 ** 31 }), { maxLength: 5 }),
);

let rss0 = 0;
beforeAll(() => { rss0 = peakRss(); });
afterAll(() => { expect(peakRss() - rss0).toBeLessThan(RSS_GROWTH_LIMIT); });

describe('fuzz: safetensors', () => {
  it('the corpus itself parses (the seeds are valid files, two are refused as intended)', () => {
    for (const b of corpus) parse(b);
    expect(parse(corpus[0]!).ok).toBe(true);
    expect(parse(corpus[2]!).ok).toBe(false);
  });

  it('mutated files (bit flips, truncations, splices, length-field edits) and random bytes', () => {
    const dictionary = ['{', '"', '[', ']', '"dtype"', '"F16"', '"data_offsets"', '"shape"', '"__metadata__"', '1e999', '-1', '\\n'].map(utf8);
    fuzz('safetensors-bytes', [mutatedBytes(corpus, { fieldOffsets: [0, 1, 4, 7], dictionary })], (b) => { parse(b); }, 3000);
  }, timeout(60_000));

  it('headers rewritten with hostile dtypes, shapes, offsets and entries', () => {
    const valid = corpus[4]!;
    const n = Number(new DataView(valid.buffer).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(valid.subarray(8, 8 + n))) as Record<string, Record<string, unknown>>;
    const data = valid.subarray(8 + n);
    const names = Object.keys(header);
    const edit = fc.record({
      name: fc.oneof(fc.constantFrom(...names), fc.string({ maxLength: 12 }), fc.string({ maxLength: 6, unit: 'binary' })),
      field: fc.constantFrom('dtype', 'shape', 'data_offsets', null),
      value: hostile,
    });
    fuzz('safetensors-header', [fc.array(edit, { minLength: 1, maxLength: 4 }), fc.nat({ max: data.length })], (edits, keep) => {
      const h: Record<string, unknown> = structuredClone(header);
      for (const e of edits) {
        if (e.field === null) h[e.name] = e.value;
        else h[e.name] = { ...(typeof h[e.name] === 'object' && h[e.name] !== null ? h[e.name] as object : {}), [e.field]: e.value };
      }
      parse(withHeader(h, data.subarray(0, keep)));
    }, 2000);
  }, timeout(60_000));

  it('a header length of 2^60, 2^64 − 1 or the file size ± 1 allocates nothing', () => {
    for (const len of [2n ** 60n, 2n ** 64n - 1n, BigInt(small.length - 7), BigInt(small.length - 9), 100n * 2n ** 20n + 1n]) {
      const b = Uint8Array.from(small);
      new DataView(b.buffer).setBigUint64(0, len, true);
      const out = parse(b);
      if (!out.ok) expect(out.error.message).toMatch(/^fuzz\.safetensors: /);
    }
  });

  it('regression: a tensor described by a deeply nested array is refused in one line (the message quoted it with JSON.stringify, which overflowed the stack)', () => {
    const deep = '['.repeat(20_000) + ']'.repeat(20_000);
    const json = utf8(`{"t":${deep}}`);
    const b = new Uint8Array(8 + json.length);
    new DataView(b.buffer).setBigUint64(0, BigInt(json.length), true);
    b.set(json, 8);
    const out = parse(b);
    expect(out.ok).toBe(false);
  });

  it('regression: names and values from the header are quoted on one line and cut short (a name holding a newline, a 100 kB dtype)', () => {
    const file = (header: string) => { const j = utf8(header); const b = new Uint8Array(8 + j.length); new DataView(b.buffer).setBigUint64(0, BigInt(j.length), true); b.set(j, 8); return b; };
    const named = parse(file('{"a\\nb": {"dtype": "X"}}'));
    if (!named.ok) expect(named.error.message).toBe('fuzz.safetensors: tensor "a\\nb" has unsupported dtype "X"');
    const meta = parse(file('{"__metadata__": {"k\\nv": 1}}'));
    if (!meta.ok) expect(meta.error.message).toBe('fuzz.safetensors: __metadata__."k\\nv" must be a string');
    const long = parse(file(`{"t": {"dtype": "${'x'.repeat(100_000)}"}}`));
    if (!long.ok) expect(long.error.message).toMatch(/^fuzz\.safetensors: tensor "t" has unsupported dtype "x+…$/);
    for (const o of [named, meta, long]) expect(o.ok).toBe(false);
  });
});
