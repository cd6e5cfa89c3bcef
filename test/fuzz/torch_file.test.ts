/**
 * Fuzzing the PyTorch readers: the zip container (mutations of real torch.save files, with the
 * end-of-central-directory and central-directory length fields targeted), the restricted
 * unpickler (mutated pickles re-zipped so their CRC holds, and random opcode programs over the
 * globals a state dict may use), and the legacy format. Any input gives contiguous tensors whose
 * bytes match dtype × shape, or a TorchFileError (PickleError for the bare unpickler); nothing is
 * allocated from a claimed size.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PickleError, PickleWriter, unpickle } from '../../src/checkpoint/pickle.js';
import { DTYPE_BYTES, type SafeTensor } from '../../src/checkpoint/safetensors.js';
import { parseTorchFile, serializeTorchFile, TorchFileError } from '../../src/checkpoint/torch_file.js';
import { ZipReader, writeZip } from '../../src/checkpoint/torch_zip.js';
import { fixturePath } from '../helpers/fixtures.js';
import { concat, expectAllowed, fc, fuzz, mutate, mutatedBytes, mutationList, peakRss, RSS_GROWTH_LIMIT, timeout, utf8, type Mutation } from './helpers.js';

const read = (name: string) => new Uint8Array(readFileSync(fixturePath(`layouts/${name}`)));
const zipFiles = [read('tensors.pth'), read('hf_model/pytorch_model.bin'), read('os_system.pth'), read('posix_system.pth')];
const legacyFiles = [read('tensors_legacy.pth'), read('eval.bin')];
const written = serializeTorchFile([
  ['w', { dtype: 'F32', shape: [2, 2], bytes: new Uint8Array(Float32Array.from([1, 2, 3, 4]).buffer) }],
  ['n', { dtype: 'I64', shape: [], bytes: new Uint8Array(8) }],
]);
const corpus = [...zipFiles, ...legacyFiles, written];

/** Offsets of the zip length and offset fields (EOCD count/size/offset, each entry's sizes, name length, local offset). */
function zipFieldOffsets(b: Uint8Array): number[] {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: number[] = [];
  for (let i = 0; i + 4 <= b.length; i++) {
    const sig = v.getUint32(i, true);
    if (sig === 0x06054b50) out.push(i + 8, i + 10, i + 12, i + 16);
    if (sig === 0x02014b50) out.push(i + 20, i + 24, i + 28, i + 30, i + 42);
    if (sig === 0x04034b50) out.push(i + 26, i + 28);
  }
  return out;
}
const fieldOffsets = [...new Set(corpus.flatMap(zipFieldOffsets))];

function wellFormed(tensors: Map<string, SafeTensor>) {
  for (const [name, t] of tensors) {
    expect(typeof name).toBe('string');
    expect(t.shape.every((d) => Number.isSafeInteger(d) && d >= 0), name).toBe(true);
    expect(t.bytes.byteLength, name).toBe(t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype]);
  }
}

const parse = (b: Uint8Array) => expectAllowed('parseTorchFile', () => parseTorchFile(b, 'fuzz.pth'), {
  errors: [TorchFileError], inputBytes: b.byteLength, check: wellFormed,
});

const PICKLE_TOKENS = [
  [0x80, 2], [0x28], [0x29], [0x74], [0x85], [0x86], [0x87], [0x5d], [0x61], [0x65], [0x7d], [0x73], [0x75], [0x52], [0x62], [0x51], [0x94], [0x32],
  [0x30], [0x31], [0x4e], [0x88], [0x89], [0x2e], [0x68, 0], [0x71, 0], [0x6a, 0xff, 0xff, 0xff, 0xff], [0x4b, 0], [0x4a, 0xff, 0xff, 0xff, 0x7f],
  [0x8a, 8, 0, 0, 0, 0, 0, 0, 0, 0x80], [0x58, 0xff, 0xff, 0xff, 0xff], [0x8d, 0, 0, 0, 0, 0, 0, 0, 0x10], [0x54, 0xff, 0xff, 0xff, 0xff], [0x95, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
  ...['collections\nOrderedDict\n', 'torch._utils\n_rebuild_tensor_v2\n', 'torch._utils\n_rebuild_tensor_v3\n', 'torch._utils\n_rebuild_parameter\n', 'torch\nFloatStorage\n', 'torch\nUntypedStorage\n', 'torch\nfloat16\n', 'os\nsystem\n']
    .map((g) => [0x63, ...utf8(g)]),
].map((t) => Uint8Array.from(t));

/** The entries of a zip, with data.pkl mutated and re-zipped (the CRCs then hold, so the unpickler sees the mutation). */
function rezipWithMutatedPickle(zip: Uint8Array, mutations: readonly Mutation[], pickles: Uint8Array[]): Uint8Array {
  const r = new ZipReader(zip, 'corpus');
  return writeZip([...r.entries.keys()].map((name) => {
    const data = r.read(name);
    return { name, data: name.endsWith('data.pkl') ? mutate(data, mutations, pickles) : data };
  }));
}

const reader = (b: Uint8Array) => new ZipReader(b, 'corpus');
const pickles = zipFiles.map((z) => { const r = reader(z); return r.read([...r.entries.keys()].find((n) => n.endsWith('data.pkl'))!); });

/** One opcode with its argument: a small grammar over what state-dict pickles contain. */
const op: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...PICKLE_TOKENS) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 255 }).map((n) => Uint8Array.of(0x4b, n)) },
  { weight: 2, arbitrary: fc.constantFrom('storage', 'cpu', '0', '1', 'w', 'state_dict', 'module.w', '').map((s) => { const b = utf8(s); return Uint8Array.of(0x8c, b.length, ...b); }) },
  { weight: 1, arbitrary: fc.integer().map((n) => { const b = new Uint8Array(5); b[0] = 0x4a; new DataView(b.buffer).setInt32(1, n, true); return b; }) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 4 }) },
);

let rss0 = 0;
beforeAll(() => { rss0 = peakRss(); });
afterAll(() => { expect(peakRss() - rss0).toBeLessThan(RSS_GROWTH_LIMIT); });

describe('fuzz: torch.save zip, legacy files and the unpickler', () => {
  it('the corpus parses, or is refused as intended (os.system, eval)', () => {
    for (const b of corpus) parse(b);
    expect(parse(zipFiles[0]!).ok).toBe(true);
    expect(parse(legacyFiles[0]!).ok).toBe(true);
    expect(parse(zipFiles[2]!).ok).toBe(false);
  });

  it('mutated files (zip fields targeted) and random bytes', () => {
    fuzz('torch-bytes', [mutatedBytes(corpus, { fieldOffsets, dictionary: PICKLE_TOKENS })], (b) => { parse(b); }, 2500);
  }, timeout(60_000));

  it('mutated pickles inside valid zips (CRC intact)', () => {
    fuzz('torch-rezipped', [fc.nat({ max: 1 }), mutationList(pickles.length, { dictionary: PICKLE_TOKENS })], (which, mutations) => {
      parse(rezipWithMutatedPickle(zipFiles[which]!, mutations, pickles));
    }, 1200);
  }, timeout(60_000));

  it('random opcode programs over the allowed globals, with storages present', () => {
    const storages = [{ name: 'archive/data/0', data: new Uint8Array(64) }, { name: 'archive/data/1', data: new Uint8Array(6) }];
    fuzz('torch-opcodes', [fc.array(op, { minLength: 1, maxLength: 40 })], (ops) => {
      const pkl = concat(Uint8Array.of(0x80, 2), ...ops, Uint8Array.of(0x2e));
      parse(writeZip([{ name: 'archive/data.pkl', data: pkl }, ...storages]));
      expectAllowed('unpickle', () => unpickle(pkl, { source: 'fuzz.pkl', globals: {} }), { errors: [PickleError], inputBytes: pkl.byteLength });
    }, 2500);
  }, timeout(60_000));

  it('the bare unpickler on mutated state-dict pickles', () => {
    fuzz('unpickle-bytes', [mutatedBytes(pickles, { dictionary: PICKLE_TOKENS })], (pkl) => {
      expectAllowed('unpickle', () => unpickle(pkl, { source: 'fuzz.pkl', globals: {} }), { errors: [PickleError], inputBytes: pkl.byteLength });
    }, 1500);
  }, timeout(60_000));
});

/** A zip torch file of one tensor over storage '0' (`numel` elements of `storageType`), with the given size and stride. */
export function oneTensorFile(size: number[], stride: number[], numel: number, storageType = 'FloatStorage', offset = 0): Uint8Array {
  const w = new PickleWriter().global('collections', 'OrderedDict').op(0x29, 0x52, 0x28);
  w.str('t').global('torch._utils', '_rebuild_tensor_v2').tuple((a) => {
    a.tuple((p) => p.str('storage').global('torch', storageType).str('0').str('cpu').int(numel)).op(0x51)
      .int(offset).tuple((s) => size.forEach((d) => s.int(d))).tuple((s) => stride.forEach((d) => s.int(d)))
      .op(0x89).global('collections', 'OrderedDict').op(0x29, 0x52);
  }).op(0x52);
  return writeZip([{ name: 'archive/data.pkl', data: w.op(0x75).bytes() }, { name: 'archive/data/0', data: new Uint8Array(numel * 4) }]);
}

/** A legacy (pre-1.6) torch file of one F32 tensor [2] over storage '0' of 4 elements, whose persistent id carries `view`. */
function legacyFile(view: (w: PickleWriter) => void): Uint8Array {
  const magic = new Uint8Array(10);
  let m = 0x1950a86a20f9469cfc6cn;
  for (let i = 0; i < 10; i++, m >>= 8n) magic[i] = Number(m & 0xffn);
  const obj = new PickleWriter().global('collections', 'OrderedDict').op(0x29, 0x52, 0x28);
  obj.str('t').global('torch._utils', '_rebuild_tensor_v2').tuple((a) => {
    a.tuple((p) => { p.str('storage').global('torch', 'FloatStorage').str('0').str('cpu').int(4); view(p); }).op(0x51)
      .int(0).tuple((s) => s.int(2)).tuple((s) => s.int(1)).op(0x89).global('collections', 'OrderedDict').op(0x29, 0x52);
  }).op(0x52);
  const numel = new Uint8Array(8);
  new DataView(numel.buffer).setBigInt64(0, 4n, true);
  return concat(
    Uint8Array.of(0x80, 2, 0x8a, 10, ...magic, 0x2e), Uint8Array.of(0x80, 2, 0x4d, 0xe9, 0x03, 0x2e), Uint8Array.of(0x80, 2, 0x7d, 0x2e),
    obj.op(0x75).bytes(), new PickleWriter().op(0x5d).str('0').op(0x61).bytes(), numel, new Uint8Array(Float32Array.from([1, 2, 3, 4]).buffer),
  );
}

describe('regressions', () => {
  it('a persistent id holding a big integer is refused in one line (quoting it threw "Do not know how to serialize a BigInt")', () => {
    // found by the opcode fuzz: PROTO 2, LONG1 2^63, TUPLE1, BINPERSID, STOP
    const pkl = Uint8Array.of(0x80, 2, 0x8a, 8, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x85, 0x51, 0x2e);
    const out = parse(writeZip([{ name: 'archive/data.pkl', data: pkl }]));
    expect(out.ok).toBe(false);
    if (!out.ok) expect(out.error.message).toMatch(/unexpected persistent id \["-9223372036854775808"\]/);
  });

  it('a GLOBAL whose name runs over control characters and kilobytes is quoted, on one line and cut short', () => {
    // found by the byte fuzz: a flipped opcode turns the rest of the stream into a global's name
    const pkl = concat(Uint8Array.of(0x80, 2, 0x63), utf8('os\r\x1b[2Jsystem' + 'x'.repeat(5000) + '\nname\n'), Uint8Array.of(0x2e));
    const out = parse(writeZip([{ name: 'archive/data.pkl', data: pkl }]));
    expect(out.ok).toBe(false);
    if (!out.ok) expect(out.error.message).toMatch(/the global "os\\r\\u001b\[2Jsystemxx+…, which a state dict never needs/);
    if (!out.ok) expect(out.error.message.length).toBeLessThan(600);
    // plain names read as before
    const plain = parse(writeZip([{ name: 'archive/data.pkl', data: concat(Uint8Array.of(0x80, 2, 0x63), utf8('os\nsystem\n'), Uint8Array.of(0x2e)) }]));
    if (!plain.ok) expect(plain.error.message).toMatch(/the global os\.system, which/);
  });

  it('an archive folder whose name holds a newline is named on one line (found by the 20× campaign: a flipped byte in the name)', () => {
    const pkl = concat(Uint8Array.of(0x80, 2, 0x63), utf8('os\nsystem\n'), Uint8Array.of(0x2e));
    const out = parse(writeZip([{ name: '\nrchive/data.pkl', data: pkl }]));
    expect(out.ok).toBe(false);
    if (!out.ok) expect(out.error.message).toMatch(/^fuzz\.pth: "\\nrchive\/data\.pkl": refusing to load: the pickle references the global os\.system/);
    // and the reader's own messages: a storage missing under that folder
    const reader = new ZipReader(writeZip([{ name: '\nrchive/data.pkl', data: pkl }]), 'fuzz.pth');
    expect(() => reader.read('\nrchive/data/0')).toThrow(/^fuzz\.pth: archive has no entry  ?rchive\/data\/0$/);
  });

  it('a legacy storage view whose offset is not an integer is refused (it read as zeros)', () => {
    expect(parse(legacyFile((p) => p.tuple((v) => v.str('0').str('x').int(2)))).ok).toBe(false);
    // a well-formed view (offset 1, 2 elements) reads elements 1 and 2
    const good = parse(legacyFile((p) => p.tuple((v) => v.str('0').int(1).int(2))));
    expect(good.ok).toBe(true);
    if (good.ok) expect(Array.from(new Float32Array(good.value.get('t')!.bytes.slice().buffer))).toEqual([2, 3]);
  });


  it('an expanded (stride-0) view claiming 2^30 elements of a 1-element storage is refused, not allocated', () => {
    const out = parse(oneTensorFile([2 ** 30], [0], 1));
    expect(out.ok).toBe(false);
  });

  it('a 2-D expanded view claiming 4 GiB of a 4-byte storage is refused too', () => {
    expect(parse(oneTensorFile([2 ** 15, 2 ** 15], [0, 0], 1)).ok).toBe(false);
  });

  it('a modest broadcast view (stride 0, 4 × 3 from 3 values) still reads', () => {
    const out = parse(oneTensorFile([4, 3], [0, 1], 3));
    expect(out.ok).toBe(true);
  });
});
