/**
 * A restricted unpickler (Python pickle protocols 0–5, binary opcodes) for PyTorch state dicts.
 *
 * Unpickling in Python runs code: GLOBAL names any importable callable and REDUCE calls it. Here
 * nothing is imported or called. GLOBAL is looked up in a caller-given allow-list of plain
 * TypeScript functions (e.g. `torch._utils._rebuild_tensor_v2`); any other name — `os.system`,
 * `builtins.eval`, `subprocess.Popen` — stops the load with an error naming it. Opcodes that build
 * arbitrary objects (INST, OBJ, EXT*) are refused; NEWOBJ only builds allow-listed classes. Every length is checked against the
 * remaining bytes before anything is sliced, so a malformed stream is an error, not a huge
 * allocation.
 */
import { quote, quoteName } from '../quote.js';

export class PickleError extends Error {
  override name = 'PickleError';
}

/** An allowed global: a constant (e.g. a storage type) or a function REDUCE may call. */
export interface PyGlobal {
  readonly kind: 'global';
  readonly name: string;
  readonly call?: (args: unknown[]) => unknown;
}

export const pyGlobal = (name: string, call?: (args: unknown[]) => unknown): PyGlobal => ({ kind: 'global', name, call });
export const isPyGlobal = (v: unknown): v is PyGlobal => typeof v === 'object' && v !== null && (v as PyGlobal).kind === 'global';

/** A Python dict (or OrderedDict); keys keep insertion order. */
export class PyDict extends Map<unknown, unknown> {}

export interface UnpickleOptions {
  /** `module.name` → allowed global. */
  globals: Record<string, PyGlobal>;
  /** Resolves BINPERSID ids (PyTorch storages). Without it, persistent ids are refused. */
  persistentLoad?: (pid: unknown) => unknown;
  /** Names the stream in errors (e.g. `model.pth: archive/data.pkl`). */
  source: string;
  /** Globals listed in the refusal message as what is allowed. */
  describeAllowed?: string;
}

const MARK = Symbol('mark');

export interface UnpickleResult {
  value: unknown;
  /** Offset just past STOP: legacy torch files hold several pickles back to back. */
  end: number;
}

/** Reads one pickle starting at `start`. */
export function unpickle(buf: Uint8Array, opts: UnpickleOptions, start = 0): UnpickleResult {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const fail = (msg: string): never => { throw new PickleError(`${opts.source}: ${msg}`); };
  const stack: unknown[] = [];
  const memo = new Map<number, unknown>();
  let pos = start;

  const need = (n: number) => { if (n < 0 || pos + n > buf.byteLength) fail(`truncated pickle: ${n} bytes needed at offset ${pos}, ${buf.byteLength - pos} left`); };
  const u8 = () => { need(1); return buf[pos++]!; };
  const u16 = () => { need(2); const v = view.getUint16(pos, true); pos += 2; return v; };
  const u32 = () => { need(4); const v = view.getUint32(pos, true); pos += 4; return v; };
  const u64 = () => {
    need(8);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(buf.byteLength)) fail(`length ${v} at offset ${pos - 8} exceeds the ${buf.byteLength}-byte stream`);
    return Number(v);
  };
  const bytes = (n: number) => { need(n); const b = buf.subarray(pos, pos + n); pos += n; return b; };
  const utf8 = (n: number) => {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes(n));
    } catch (e) {
      if (e instanceof PickleError) throw e;
      return fail(`invalid UTF-8 string at offset ${pos - n}`);
    }
  };
  const line = () => {
    const end = buf.indexOf(0x0a, pos);
    if (end < 0) fail(`truncated pickle: unterminated text argument at offset ${pos}`);
    const s = new TextDecoder('latin1').decode(buf.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const pop = () => (stack.length ? stack.pop() : fail(`stack underflow at offset ${pos - 1}`));
  const top = () => (stack.length ? stack[stack.length - 1] : fail(`stack underflow at offset ${pos - 1}`));
  const popMark = (): unknown[] => {
    const i = stack.lastIndexOf(MARK);
    if (i < 0) fail(`MARK missing at offset ${pos - 1}`);
    const items = stack.splice(i);
    items.shift();
    if (items.includes(MARK)) fail(`unbalanced MARK at offset ${pos - 1}`);
    return items;
  };
  const memoGet = (i: number) => (memo.has(i) ? memo.get(i) : fail(`memo index ${i} was never stored`));
  const int = (v: bigint): number | bigint => (v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
  const long = (b: Uint8Array): number | bigint => {
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (b.length && b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
    return int(v);
  };
  const findGlobal = (module: string, name: string): PyGlobal => {
    const full = `${module}.${name}`;
    const g = Object.hasOwn(opts.globals, full) ? opts.globals[full] : undefined;
    if (!g) fail(`refusing to load: the pickle references the global ${quoteName(full)}, which a state dict never needs${opts.describeAllowed ? ` (allowed: ${opts.describeAllowed})` : ''}; nothing was executed`);
    return g!;
  };
  const setItems = (dict: unknown, items: unknown[]) => {
    if (!(dict instanceof PyDict)) fail(`SETITEM(S) on a ${describe(dict)}, expected a dict`);
    if (items.length % 2) fail('SETITEMS with an odd number of items');
    for (let i = 0; i < items.length; i += 2) (dict as PyDict).set(items[i], items[i + 1]);
  };
  const append = (list: unknown, items: unknown[]) => {
    if (!Array.isArray(list)) fail(`APPEND(S) on a ${describe(list)}, expected a list`);
    (list as unknown[]).push(...items);
  };

  for (;;) {
    const at = pos;
    const op = u8();
    switch (op) {
      case 0x80: { // PROTO
        const p = u8();
        if (p > 5) fail(`pickle protocol ${p} is newer than 5`);
        break;
      }
      case 0x95: u64(); break; // FRAME: a length hint only
      case 0x2e: // STOP
        if (stack.length !== 1) fail(`STOP with ${stack.length} values on the stack`);
        return { value: stack[0], end: pos };
      case 0x28: stack.push(MARK); break; // MARK
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x4a: need(4); stack.push(view.getInt32(pos, true)); pos += 4; break; // BININT
      case 0x8a: stack.push(long(bytes(u8()))); break; // LONG1
      case 0x8b: { // LONG4
        const n = u32();
        if (n > 64) fail(`LONG4 of ${n} bytes at offset ${at}; a state dict has no such integers`);
        stack.push(long(bytes(n)));
        break;
      }
      case 0x49: { // INT (text); I00/I01 are False/True
        const s = line();
        if (s === '00' || s === '01') stack.push(s === '01');
        else if (/^-?\d+$/.test(s)) stack.push(int(BigInt(s)));
        else fail(`bad INT ${quote(s)} at offset ${at}`);
        break;
      }
      case 0x4c: { // LONG (text)
        const s = line().replace(/L$/, '');
        if (!/^-?\d{1,40}$/.test(s)) fail(`bad LONG ${quote(s)} at offset ${at}`);
        stack.push(int(BigInt(s)));
        break;
      }
      case 0x47: need(8); stack.push(view.getFloat64(pos, false)); pos += 8; break; // BINFLOAT (big-endian)
      case 0x46: { // FLOAT (text)
        const v = Number(line());
        if (Number.isNaN(v)) fail(`bad FLOAT at offset ${at}`);
        stack.push(v);
        break;
      }
      case 0x58: stack.push(utf8(u32())); break; // BINUNICODE
      case 0x8c: stack.push(utf8(u8())); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(utf8(u64())); break; // BINUNICODE8
      case 0x54: { const n = view.getInt32((need(4), pos), true); pos += 4; stack.push(new TextDecoder('latin1').decode(bytes(n))); break; } // BINSTRING
      case 0x55: stack.push(new TextDecoder('latin1').decode(bytes(u8()))); break; // SHORT_BINSTRING
      case 0x42: stack.push(bytes(u32()).slice()); break; // BINBYTES
      case 0x43: stack.push(bytes(u8()).slice()); break; // SHORT_BINBYTES
      case 0x8e: stack.push(bytes(u64()).slice()); break; // BINBYTES8
      case 0x29: stack.push([]); break; // EMPTY_TUPLE
      case 0x74: stack.push(popMark()); break; // TUPLE
      case 0x85: stack.push([pop()]); break; // TUPLE1
      case 0x86: { const b = pop(); stack.push([pop(), b]); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); stack.push([pop(), b, c]); break; } // TUPLE3
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x6c: stack.push(popMark()); break; // LIST
      case 0x61: { const v = pop(); append(top(), [v]); break; } // APPEND
      case 0x65: { const items = popMark(); append(top(), items); break; } // APPENDS
      case 0x7d: stack.push(new PyDict()); break; // EMPTY_DICT
      case 0x64: { const d = new PyDict(); setItems(d, popMark()); stack.push(d); break; } // DICT
      case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const items = popMark(); setItems(top(), items); break; } // SETITEMS
      case 0x63: { // GLOBAL "module\nname\n"
        const module = line();
        stack.push(findGlobal(module, line()));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail(`STACK_GLOBAL needs two strings at offset ${at}`);
        stack.push(findGlobal(module as string, name as string));
        break;
      }
      case 0x52: { // REDUCE: callable(*args), only for allowed globals
        const args = pop();
        const fn = pop();
        if (!isPyGlobal(fn) || !fn.call) fail(`REDUCE on ${isPyGlobal(fn) ? fn.name : describe(fn)}, which is not an allowed callable`);
        if (!Array.isArray(args)) fail(`REDUCE arguments are a ${describe(args)}, expected a tuple`);
        try {
          stack.push((fn as PyGlobal).call!(args as unknown[]));
        } catch (e) {
          fail(`${(fn as PyGlobal).name}: ${(e as Error).message}`);
        }
        break;
      }
      case 0x81: { // NEWOBJ: cls.__new__(cls, *args), only for allowed classes (timm checkpoints pickle argparse.Namespace)
        const args = pop();
        const cls = pop();
        if (!isPyGlobal(cls) || !cls.call) fail(`opcode 0x81 (NEWOBJ) at offset ${at} builds a ${isPyGlobal(cls) ? cls.name : describe(cls)}, which is not an allowed class`);
        if (!Array.isArray(args)) fail(`NEWOBJ arguments are a ${describe(args)}, expected a tuple`);
        stack.push((cls as PyGlobal).call!(args as unknown[]));
        break;
      }
      case 0x62: { // BUILD: object state (OrderedDict._metadata, tensor hooks) is not needed; dropped
        pop();
        const obj = top();
        if (obj === null || typeof obj !== 'object' || isPyGlobal(obj)) fail(`BUILD on a ${describe(obj)}`);
        break;
      }
      case 0x51: { // BINPERSID
        const pid = pop();
        if (!opts.persistentLoad) fail('persistent ids are not allowed in this pickle');
        stack.push(opts.persistentLoad!(pid));
        break;
      }
      case 0x68: stack.push(memoGet(u8())); break; // BINGET
      case 0x6a: stack.push(memoGet(u32())); break; // LONG_BINGET
      case 0x67: stack.push(memoGet(Number(line()))); break; // GET
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x70: memo.set(Number(line()), top()); break; // PUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      default:
        fail(`opcode 0x${op.toString(16).padStart(2, '0')}${OPCODE_NAMES[op] ? ` (${OPCODE_NAMES[op]})` : ''} at offset ${at} is not allowed in a state dict pickle`);
    }
  }
}

const OPCODE_NAMES: Record<number, string> = {
  0x69: 'INST', 0x6f: 'OBJ', 0x81: 'NEWOBJ', 0x92: 'NEWOBJ_EX', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4',
  0x50: 'PERSID', 0x53: 'STRING', 0x56: 'UNICODE', 0x8f: 'EMPTY_SET', 0x90: 'ADDITEMS', 0x91: 'FROZENSET',
  0x96: 'BYTEARRAY8', 0x97: 'NEXT_BUFFER', 0x98: 'READONLY_BUFFER',
};

function describe(v: unknown): string {
  if (v === null) return 'None';
  if (Array.isArray(v)) return 'tuple/list';
  if (v instanceof PyDict) return 'dict';
  if (isPyGlobal(v)) return v.name;
  return typeof v;
}

/**
 * A minimal pickler (protocol 2) for what `torch.save` of a state dict writes: an OrderedDict
 * of tensors rebuilt by `_rebuild_tensor_v2` over persistent storages.
 */
export class PickleWriter {
  private readonly chunks: number[] = [0x80, 2];
  private readonly enc = new TextEncoder();

  op(...codes: number[]): this {
    this.chunks.push(...codes);
    return this;
  }

  global(module: string, name: string): this {
    return this.op(0x63, ...this.enc.encode(`${module}\n${name}\n`));
  }

  str(s: string): this {
    const b = this.enc.encode(s);
    return this.op(0x58, ...le32(b.length), ...b);
  }

  int(n: number): this {
    if (!Number.isSafeInteger(n)) throw new RangeError(`cannot pickle ${n} as an int`);
    if (n >= 0 && n < 256) return this.op(0x4b, n);
    if (n >= -(2 ** 31) && n < 2 ** 31) return this.op(0x4a, ...le32(n));
    const b: number[] = [];
    let v = BigInt(n);
    for (let i = 0; i < 8; i++, v >>= 8n) b.push(Number(v & 0xffn));
    return this.op(0x8a, 8, ...b); // LONG1, two's complement
  }

  /** MARK, items, TUPLE. */
  tuple(items: (w: this) => void): this {
    this.op(0x28);
    items(this);
    return this.op(0x74);
  }

  bytes(): Uint8Array {
    return Uint8Array.from([...this.chunks, 0x2e]);
  }
}

const le32 = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
