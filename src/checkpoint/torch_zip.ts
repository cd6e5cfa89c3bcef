/**
 * The zip container of `torch.save` (PyTorch ≥ 1.6): `<archive>/data.pkl`, `<archive>/data/<key>`
 * storages and `<archive>/version`, stored uncompressed with data aligned to 64 bytes. The reader
 * takes names and sizes from the central directory (torch's local headers defer sizes to a data
 * descriptor), handles zip64 and deflate, and bounds-checks every offset; the writer produces what
 * `torch.load` expects.
 */
import { crc32, inflateRawSync } from 'node:zlib';
import { oneLine } from '../quote.js';

export class ZipError extends Error {
  override name = 'ZipError';
}

export interface ZipEntry { name: string; method: number; compressedSize: number; size: number; crc: number; localOffset: number }

export class ZipReader {
  readonly entries = new Map<string, ZipEntry>();
  private readonly view: DataView;

  constructor(private readonly buf: Uint8Array, private readonly source: string) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.readCentralDirectory();
  }

  private fail(msg: string): never {
    // entry names come from the archive: control characters in them must not break the line
    throw new ZipError(`${this.source}: ${oneLine(msg, 1000)}`);
  }

  private u16 = (o: number) => this.view.getUint16(o, true);
  private u32 = (o: number) => this.view.getUint32(o, true);
  private u64(o: number): number {
    const v = this.view.getBigUint64(o, true);
    if (v > BigInt(this.buf.byteLength)) this.fail(`zip64 field ${v} at offset ${o} exceeds the ${this.buf.byteLength}-byte file (truncated or corrupt archive)`);
    return Number(v);
  }

  private readCentralDirectory(): void {
    const n = this.buf.byteLength;
    let eocd = -1;
    for (let i = n - 22; i >= Math.max(0, n - 22 - 0xffff); i--) {
      if (this.u32(i) === 0x06054b50) { eocd = i; break; }
    }
    if (eocd < 0) this.fail(`no zip end-of-central-directory record: the file is truncated or not a torch.save zip archive (${n} bytes)`);
    let count = this.u16(eocd + 10);
    let cdSize = this.u32(eocd + 12);
    let cdOffset = this.u32(eocd + 16);
    if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      const loc = eocd - 20;
      if (loc < 0 || this.u32(loc) !== 0x07064b50) this.fail('zip64 locator missing');
      const z64 = this.u64(loc + 8);
      if (z64 + 56 > n || this.u32(z64) !== 0x06064b50) this.fail('zip64 end-of-central-directory record missing');
      count = this.u64(z64 + 32);
      cdSize = this.u64(z64 + 40);
      cdOffset = this.u64(z64 + 48);
    }
    if (cdOffset + cdSize > n) this.fail(`central directory [${cdOffset}, ${cdOffset + cdSize}) lies outside the ${n}-byte file`);
    let p = cdOffset;
    for (let i = 0; i < count; i++) {
      if (p + 46 > cdOffset + cdSize || this.u32(p) !== 0x02014b50) this.fail(`central directory entry ${i} is corrupt`);
      const method = this.u16(p + 10);
      const crc = this.u32(p + 16);
      let compressedSize = this.u32(p + 20);
      let size = this.u32(p + 24);
      const nameLen = this.u16(p + 28);
      const extraLen = this.u16(p + 30);
      const commentLen = this.u16(p + 32);
      let localOffset = this.u32(p + 42);
      const end = p + 46 + nameLen + extraLen + commentLen;
      if (end > cdOffset + cdSize) this.fail(`central directory entry ${i} overruns the directory`);
      const name = new TextDecoder().decode(this.buf.subarray(p + 46, p + 46 + nameLen));
      // zip64 extended information: present fields replace the 0xffffffff placeholders, in order
      for (let e = p + 46 + nameLen; e + 4 <= p + 46 + nameLen + extraLen;) {
        const id = this.u16(e);
        const len = this.u16(e + 2);
        if (id === 0x0001) {
          let f = e + 4;
          if (size === 0xffffffff) { size = this.u64(f); f += 8; }
          if (compressedSize === 0xffffffff) { compressedSize = this.u64(f); f += 8; }
          if (localOffset === 0xffffffff) localOffset = this.u64(f);
        }
        e += 4 + len;
      }
      this.entries.set(name, { name, method, compressedSize, size, crc, localOffset });
      p = end;
    }
  }

  /** The bytes of one entry (a view for stored entries), CRC-checked. */
  read(name: string): Uint8Array {
    const e = this.entries.get(name) ?? this.fail(`archive has no entry ${name}`);
    const lh = e.localOffset;
    if (lh + 30 > this.buf.byteLength || this.u32(lh) !== 0x04034b50) this.fail(`local header of ${name} is missing (truncated archive)`);
    const start = lh + 30 + this.u16(lh + 26) + this.u16(lh + 28);
    if (start + e.compressedSize > this.buf.byteLength) {
      this.fail(`${name} needs bytes [${start}, ${start + e.compressedSize}) but the file has ${this.buf.byteLength} (truncated archive)`);
    }
    const raw = this.buf.subarray(start, start + e.compressedSize);
    let data: Uint8Array;
    if (e.method === 0) {
      if (e.size !== e.compressedSize) this.fail(`stored entry ${name} has size ${e.size} ≠ ${e.compressedSize}`);
      data = raw;
    } else if (e.method === 8) {
      try {
        data = inflateRawSync(raw, { maxOutputLength: Math.max(1, e.size) });
      } catch (err) {
        return this.fail(`${name}: cannot inflate (${(err as Error).message})`);
      }
      if (data.byteLength !== e.size) this.fail(`${name} inflated to ${data.byteLength} bytes, expected ${e.size}`);
    } else {
      return this.fail(`${name} uses zip compression method ${e.method}; only stored (0) and deflate (8) are supported`);
    }
    if (crc32(data) >>> 0 !== e.crc) this.fail(`CRC mismatch in ${name}: the archive is corrupt`);
    return data;
  }
}

export const isZip = (buf: Uint8Array): boolean => buf.byteLength >= 4 && buf[0] === 0x50 && buf[1] === 0x4b && buf[2] === 0x03 && buf[3] === 0x04;

/**
 * Writes a stored (uncompressed) zip whose entry data start on 64-byte boundaries, as torch's
 * writer does (the padding is an extra field). Sizes must stay below 4 GiB (no zip64 on write).
 */
export function writeZip(entries: { name: string; data: Uint8Array }[]): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const { name, data } of entries) {
    if (data.byteLength >= 0xffffffff) throw new ZipError(`${name} is ${data.byteLength} bytes; zip64 writing is not supported`);
    const nameBytes = enc.encode(name);
    const crc = crc32(data) >>> 0;
    const base = offset + 30 + nameBytes.length + 4;
    const pad = (64 - (base % 64)) % 64;
    const local = new Uint8Array(30 + nameBytes.length + 4 + pad);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, 20, true);
    lv.setUint32(14, crc, true);
    lv.setUint32(18, data.byteLength, true);
    lv.setUint32(22, data.byteLength, true);
    lv.setUint16(26, nameBytes.length, true);
    lv.setUint16(28, 4 + pad, true);
    local.set(nameBytes, 30);
    lv.setUint16(30 + nameBytes.length, 0x4246, true); // 'FB': torch's padding field
    lv.setUint16(32 + nameBytes.length, pad, true);
    local.fill(0x5a, 34 + nameBytes.length); // 'Z'
    const cd = new Uint8Array(46 + nameBytes.length);
    const cv = new DataView(cd.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, 20, true);
    cv.setUint16(6, 20, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, data.byteLength, true);
    cv.setUint32(24, data.byteLength, true);
    cv.setUint16(28, nameBytes.length, true);
    cv.setUint32(42, offset, true);
    cd.set(nameBytes, 46);
    parts.push(local, data);
    central.push(cd);
    offset += local.byteLength + data.byteLength;
  }
  const cdSize = central.reduce((n, c) => n + c.byteLength, 0);
  const eocd = new Uint8Array(22);
  const ev = new DataView(eocd.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, entries.length, true);
  ev.setUint16(10, entries.length, true);
  ev.setUint32(12, cdSize, true);
  ev.setUint32(16, offset, true);
  const out = new Uint8Array(offset + cdSize + 22);
  let p = 0;
  for (const part of [...parts, ...central, eocd]) { out.set(part, p); p += part.byteLength; }
  return out;
}
