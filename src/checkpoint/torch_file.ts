/**
 * PyTorch `.pth` / `.bin` state dicts read without Python: the zip format of `torch.save`
 * (`archive/data.pkl` + `archive/data/<key>`) and the legacy pre-1.6 format (magic pickle,
 * metadata pickles, the object pickle, the storage-key list, then each storage as an int64
 * element count and its bytes). The object pickle goes through the restricted unpickler with only
 * the globals a state dict needs; tensors are copied out of their storages honouring size, stride
 * and storage offset.
 */
import { readFileSync } from 'node:fs';
import { PickleError, PickleWriter, PyDict, pyGlobal, unpickle, type PyGlobal } from './pickle.js';
import { DTYPE_BYTES as ELEMENT_BYTES, type SafeDType, type SafeTensor } from './safetensors.js';
import { ZipError, ZipReader, isZip, writeZip } from './torch_zip.js';
import { quote, quoteName } from '../quote.js';

export class TorchFileError extends Error {
  override name = 'TorchFileError';
}

const STORAGE_DTYPES: Record<string, SafeDType> = {
  FloatStorage: 'F32', HalfStorage: 'F16', BFloat16Storage: 'BF16', DoubleStorage: 'F64', LongStorage: 'I64',
  IntStorage: 'I32', ShortStorage: 'I16', CharStorage: 'I8', ByteStorage: 'U8', BoolStorage: 'BOOL',
};
const TORCH_DTYPES: Record<string, SafeDType> = {
  float32: 'F32', float: 'F32', float16: 'F16', half: 'F16', bfloat16: 'BF16', float64: 'F64', double: 'F64',
  int64: 'I64', long: 'I64', int32: 'I32', int: 'I32', int16: 'I16', int8: 'I8', uint8: 'U8', bool: 'BOOL',
};

/** A storage named by a persistent id; its bytes are attached once the file's data is located. */
class StorageRef {
  bytes?: Uint8Array;
  constructor(readonly dtype: SafeDType, readonly key: string, readonly numel: number, readonly viewOffset = 0) {}
}

/** `_rebuild_tensor*` results: a strided view of a storage, materialised after unpickling. */
class TensorRef {
  constructor(readonly storage: StorageRef, readonly offset: number, readonly size: number[], readonly stride: number[]) {}
}

const dims = (v: unknown, what: string): number[] => {
  if (!Array.isArray(v) || !v.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) throw new Error(`${what} must be a tuple of non-negative integers`);
  return v as number[];
};

function rebuildTensor(args: unknown[]): TensorRef {
  const [storage, offset, size, stride] = args;
  if (!(storage instanceof StorageRef)) throw new Error('the first argument is not a storage');
  if (!Number.isSafeInteger(offset) || (offset as number) < 0) throw new Error(`bad storage offset ${quote(offset)}`);
  const s = dims(size, 'size');
  const st = dims(stride, 'stride');
  if (s.length !== st.length) throw new Error(`size [${s.join(', ')}] and stride [${st.join(', ')}] differ in rank`);
  return new TensorRef(storage, offset as number, s, st);
}

const storageGlobals = Object.fromEntries(Object.entries(STORAGE_DTYPES).map(([name]) => [`torch.${name}`, pyGlobal(`torch.${name}`)]));
const dtypeGlobals = Object.fromEntries(Object.keys(TORCH_DTYPES).map((name) => [`torch.${name}`, pyGlobal(`torch.${name}`)]));
const GLOBALS: Record<string, PyGlobal> = {
  'collections.OrderedDict': pyGlobal('collections.OrderedDict', (args) => {
    const d = new PyDict();
    if (Array.isArray(args[0])) for (const kv of args[0]) if (Array.isArray(kv) && kv.length === 2) d.set(kv[0], kv[1]);
    return d;
  }),
  'torch._utils._rebuild_tensor': pyGlobal('torch._utils._rebuild_tensor', rebuildTensor),
  'torch._utils._rebuild_tensor_v2': pyGlobal('torch._utils._rebuild_tensor_v2', rebuildTensor),
  // v3 (untyped storages) passes the dtype explicitly
  'torch._utils._rebuild_tensor_v3': pyGlobal('torch._utils._rebuild_tensor_v3', (args) => {
    const t = rebuildTensor(args);
    const dtype = args[6];
    const name = typeof dtype === 'object' && dtype !== null ? (dtype as PyGlobal).name?.replace(/^torch\./, '') : undefined;
    const d = name ? TORCH_DTYPES[name] : undefined;
    if (!d) throw new Error(`unsupported dtype ${quote(name)}`);
    const s = t.storage;
    const typed = new StorageRef(d, s.key, s.numel / ELEMENT_BYTES[d], s.viewOffset);
    typed.bytes = s.bytes;
    return new TensorRef(typed, t.offset, t.size, t.stride);
  }),
  // timm's checkpoints carry train.py's arguments; their values are not needed (args.yaml has them) and BUILD drops them
  'argparse.Namespace': pyGlobal('argparse.Namespace', () => new PyDict()),
  'torch._utils._rebuild_parameter': pyGlobal('torch._utils._rebuild_parameter', (args) => args[0]),
  'torch._utils._rebuild_parameter_with_state': pyGlobal('torch._utils._rebuild_parameter_with_state', (args) => args[0]),
  ...storageGlobals,
  'torch.UntypedStorage': pyGlobal('torch.UntypedStorage'),
  ...dtypeGlobals,
};
const ALLOWED = 'collections.OrderedDict, argparse.Namespace (emptied), torch._utils._rebuild_tensor(_v2/_v3), torch._utils._rebuild_parameter, torch.*Storage, torch dtypes';

function storageFromPid(pid: unknown, storages: Map<string, StorageRef>): StorageRef {
  if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5) throw new PickleError(`unexpected persistent id ${quote(pid)}`);
  const [, type, key, , numel, view] = pid as [string, PyGlobal, unknown, unknown, unknown, unknown];
  const typeName = type?.name?.replace(/^torch\./, '') ?? '';
  const dtype = typeName === 'UntypedStorage' ? 'U8' : STORAGE_DTYPES[typeName];
  if (!dtype) throw new PickleError(`unsupported storage type ${quoteName(typeName)}`);
  if (typeof key !== 'string' || !/^\w+$/.test(key)) throw new PickleError(`bad storage key ${quote(key)}`);
  if (!Number.isSafeInteger(numel) || (numel as number) < 0) throw new PickleError(`bad storage size ${quote(numel)}`);
  let root = storages.get(key);
  if (!root) storages.set(key, (root = new StorageRef(dtype, key, numel as number)));
  // legacy views: (view_key, offset, size) into the root storage
  if (Array.isArray(view)) {
    if (!view.slice(1, 3).every((n) => Number.isSafeInteger(n) && n >= 0) || view.length < 3) throw new PickleError(`bad storage view ${quote(view)}`);
    return new StorageRef(dtype, key, view[2] as number, view[1] as number);
  }
  return root;
}

/** Every tensor's bytes as a contiguous little-endian array, at most `room` bytes. */
function materialise(t: TensorRef, storages: Map<string, StorageRef>, where: string, room: number): SafeTensor {
  const root = storages.get(t.storage.key)!;
  const { dtype } = t.storage;
  const el = ELEMENT_BYTES[dtype];
  const bytes = root.bytes ?? t.storage.bytes;
  if (!bytes) throw new TorchFileError(`${where}: storage ${t.storage.key} has no data`);
  const base = (t.storage.viewOffset + t.offset) * el;
  const count = t.size.reduce((a, b) => a * b, 1);
  const extent = count === 0 ? 0 : t.size.reduce((n, d, i) => n + (d - 1) * t.stride[i]!, 0) + 1;
  if (count > 0 && base + extent * el > bytes.byteLength) {
    throw new TorchFileError(`${where}: size [${t.size.join(', ')}], stride [${t.stride.join(', ')}] at offset ${t.offset} reach past the ${bytes.byteLength}-byte storage ${t.storage.key}`);
  }
  // a stride-0 (expanded) view, or many tensors over one storage, could otherwise ask for far more memory than the file holds
  if (count * el > room) throw new TorchFileError(`${where}: size [${t.size.join(', ')}] would need ${count * el} bytes, more than 4× the file's storages`);
  const out = new Uint8Array(count * el);
  const contiguous = t.size.every((_, i) => t.size[i] === 1 || t.stride[i] === t.size.slice(i + 1).reduce((a, b) => a * b, 1));
  if (contiguous) {
    out.set(bytes.subarray(base, base + count * el));
  } else {
    const idx = new Array<number>(t.size.length).fill(0);
    for (let i = 0; i < count; i++) {
      const src = base + el * idx.reduce((n, v, d) => n + v * t.stride[d]!, 0);
      out.set(bytes.subarray(src, src + el), i * el);
      for (let d = idx.length - 1; d >= 0 && ++idx[d]! === t.size[d]; d--) idx[d] = 0;
    }
  }
  return { dtype, shape: [...t.size], bytes: out };
}

/**
 * The tensors of a state dict. The pickled object may be the state dict itself or a training
 * checkpoint holding it under `state_dict`, `model`, `module` or (DINO's) `teacher`; a
 * DataParallel `module.` prefix is removed.
 */
function findStateDict(obj: unknown, source: string, stateDictKey?: string): PyDict {
  if (!(obj instanceof PyDict)) throw new TorchFileError(`${source}: holds a ${Array.isArray(obj) ? 'list' : typeof obj}, expected a state dict`);
  const holds = (v: unknown): v is PyDict => v instanceof PyDict && [...v.values()].some((t) => t instanceof TensorRef);
  if (stateDictKey !== undefined) {
    const inner = obj.get(stateDictKey);
    if (holds(inner)) return inner;
    const found = [...obj.keys()].filter((k) => holds(obj.get(k)));
    throw new TorchFileError(`${source}: has no ${quoteName(stateDictKey)} state dict; it holds ${found.length ? found.map((k) => quoteName(String(k))).join(', ') : 'none under a key'}`);
  }
  // DINO's training checkpoints hold `teacher` and `student`: the teacher is the one DINO evaluates (checkpoint_key)
  for (const key of ['state_dict', 'model', 'module', 'model_state', 'teacher', 'student']) {
    const inner = obj.get(key);
    if (holds(inner)) return inner;
  }
  return obj;
}

function collect(obj: unknown, storages: Map<string, StorageRef>, source: string, stateDictKey?: string): Map<string, SafeTensor> {
  const dict = findStateDict(obj, source, stateDictKey);
  const out = new Map<string, SafeTensor>();
  const strip = [...dict.keys()].every((k) => typeof k === 'string' && k.startsWith('module.'));
  // the copies may take a few times the storages (views of one storage are copied apart), never what sizes claim
  let room = 4 * [...storages.values()].reduce((n, s) => n + (s.bytes?.byteLength ?? 0), 0) + 2 ** 20;
  for (const [k, v] of dict) {
    if (typeof k !== 'string') throw new TorchFileError(`${source}: state dict key ${quote(k)} is not a string`);
    if (!(v instanceof TensorRef)) throw new TorchFileError(`${source}: ${quote(k)} is not a tensor; expected a state dict of tensors`);
    const name = strip ? k.slice('module.'.length) : k;
    const t = materialise(v, storages, `${source}: ${quoteName(name)}`, room);
    room -= t.bytes.byteLength;
    out.set(name, t);
  }
  return out;
}

function readZipFormat(buf: Uint8Array, source: string, stateDictKey?: string): Map<string, SafeTensor> {
  const zip = new ZipReader(buf, source);
  const pkl = [...zip.entries.keys()].find((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (!pkl) throw new TorchFileError(`${source}: the zip archive has no <archive>/data.pkl; not a torch.save file`);
  const prefix = pkl.slice(0, -'data.pkl'.length);
  if (zip.entries.has(`${prefix}byteorder`) && new TextDecoder().decode(zip.read(`${prefix}byteorder`)).trim() !== 'little') {
    throw new TorchFileError(`${source}: big-endian torch files are not supported`);
  }
  const storages = new Map<string, StorageRef>();
  const value = unpickle(zip.read(pkl), {
    source: `${source}: ${quoteName(pkl)}`, globals: GLOBALS, describeAllowed: ALLOWED, persistentLoad: (pid) => storageFromPid(pid, storages),
  }).value;
  for (const s of storages.values()) {
    s.bytes = zip.read(`${prefix}data/${s.key}`);
    if (s.bytes.byteLength !== s.numel * ELEMENT_BYTES[s.dtype]) {
      throw new TorchFileError(`${source}: storage ${s.key} holds ${s.bytes.byteLength} bytes, expected ${s.numel} × ${ELEMENT_BYTES[s.dtype]}`);
    }
  }
  return collect(value, storages, source, stateDictKey);
}

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;

function readLegacyFormat(buf: Uint8Array, source: string, stateDictKey?: string): Map<string, SafeTensor> {
  const plain = { source, globals: {} };
  let r = unpickle(buf, plain);
  if (r.value !== LEGACY_MAGIC) throw new TorchFileError(`${source}: neither a torch.save zip archive nor a legacy torch file (bad magic number)`);
  r = unpickle(buf, plain, r.end); // protocol version
  r = unpickle(buf, plain, r.end); // sys info: endianness, type sizes
  const info = r.value as PyDict;
  if (info instanceof PyDict && info.get('little_endian') === false) throw new TorchFileError(`${source}: big-endian legacy files are not supported`);
  const storages = new Map<string, StorageRef>();
  r = unpickle(buf, { source, globals: GLOBALS, describeAllowed: ALLOWED, persistentLoad: (pid) => storageFromPid(pid, storages) }, r.end);
  const value = r.value;
  r = unpickle(buf, plain, r.end);
  const keys = r.value;
  if (!Array.isArray(keys)) throw new TorchFileError(`${source}: storage key list missing`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = r.end;
  for (const key of keys) {
    const s = storages.get(String(key));
    if (!s || pos + 8 > buf.byteLength) throw new TorchFileError(`${source}: storage ${quoteName(String(key))} is missing or truncated`);
    const numel = Number(view.getBigInt64(pos, true));
    const n = numel * ELEMENT_BYTES[s.dtype];
    if (numel !== s.numel || pos + 8 + n > buf.byteLength) throw new TorchFileError(`${source}: storage ${quoteName(String(key))} is truncated or has the wrong size`);
    s.bytes = buf.subarray(pos + 8, pos + 8 + n);
    pos += 8 + n;
  }
  return collect(value, storages, source, stateDictKey);
}

/**
 * Parses a `.pth` / `.bin` file's bytes into tensors (any dtype, contiguous). `stateDictKey`
 * picks one state dict of a training checkpoint (timm's `state_dict_ema`); without it the
 * first of state_dict, model, module, model_state (or the object itself).
 */
export function parseTorchFile(buf: Uint8Array, source = 'torch file', stateDictKey?: string): Map<string, SafeTensor> {
  try {
    if (isZip(buf)) return readZipFormat(buf, source, stateDictKey);
    if (buf[0] === 0x80) return readLegacyFormat(buf, source, stateDictKey);
  } catch (e) {
    if (e instanceof PickleError || e instanceof ZipError) throw new TorchFileError(e.message);
    throw e;
  }
  throw new TorchFileError(`${source}: not a PyTorch file (expected a torch.save zip archive or a legacy pickle)`);
}

export function readTorchFile(path: string): Map<string, SafeTensor> {
  return parseTorchFile(readFileSync(path), path);
}

/**
 * Writes tensors as `torch.save(OrderedDict)` would (zip format), so `torch.load` returns the
 * state dict. `archive` is the folder name inside the zip (torch uses the file's stem).
 */
export function serializeTorchFile(tensors: [string, SafeTensor][], archive = 'archive'): Uint8Array {
  const w = new PickleWriter().global('collections', 'OrderedDict').op(0x29, 0x52, 0x28); // OrderedDict() MARK
  const typeName = Object.fromEntries(Object.entries(STORAGE_DTYPES).map(([n, d]) => [d, n]));
  const entries: { name: string; data: Uint8Array }[] = [];
  tensors.forEach(([name, t], i) => {
    const strides = t.shape.map((_, d) => t.shape.slice(d + 1).reduce((a, b) => a * b, 1));
    w.str(name).global('torch._utils', '_rebuild_tensor_v2').tuple((a) => {
      a.tuple((p) => p.str('storage').global('torch', typeName[t.dtype]!).str(String(i)).str('cpu').int(t.bytes.byteLength / ELEMENT_BYTES[t.dtype]))
        .op(0x51) // BINPERSID
        .int(0)
        .tuple((s) => t.shape.forEach((d) => s.int(d)))
        .tuple((s) => strides.forEach((d) => s.int(d)))
        .op(0x89) // requires_grad=False
        .global('collections', 'OrderedDict').op(0x29, 0x52); // backward hooks
    }).op(0x52);
    entries.push({ name: `${archive}/data/${i}`, data: t.bytes });
  });
  const pkl = w.op(0x75).bytes(); // SETITEMS
  return writeZip([{ name: `${archive}/data.pkl`, data: pkl }, ...entries, { name: `${archive}/version`, data: new TextEncoder().encode('3\n') }]);
}
