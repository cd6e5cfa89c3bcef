/**
 * A baseline TIFF reader for multispectral rasters: N samples per pixel, 8/16-bit unsigned or
 * 32-bit float, chunky or planar, strips or tiles, uncompressed, PackBits or Deflate, with
 * horizontal differencing (predictor 2) for integers. Why not libvips: sharp hands 16-bit
 * N-band TIFFs back whole, but collapses an 8-bit or float 4-band 'b-w' TIFF to one band (its
 * colourspace step has no multiband route), so bands would be lost. Only the first image
 * (IFD) is read; anything else (JPEG/LZW compression, signed or 12-bit samples) is a one-line
 * error naming the tag.
 */
import { inflateSync } from 'node:zlib';

export interface TiffRaster {
  /** samples, row-major, bands interleaved (HWC) */
  data: Uint8Array | Uint16Array | Float32Array;
  width: number;
  height: number;
  bands: number;
  /** 8, 16 (unsigned integers) or 32 (float) */
  bitsPerSample: 8 | 16 | 32;
}

export class TiffError extends Error {
  override name = 'TiffError';
}

export const isTiff = (b: Uint8Array): boolean =>
  b.length >= 8 && ((b[0] === 0x49 && b[1] === 0x49 && b[2] === 42 && b[3] === 0) || (b[0] === 0x4d && b[1] === 0x4d && b[2] === 0 && b[3] === 42));

const TAG = {
  width: 256, height: 257, bits: 258, compression: 259, stripOffsets: 273, samples: 277, rowsPerStrip: 278,
  stripBytes: 279, planar: 284, predictor: 317, tileWidth: 322, tileLength: 323, tileOffsets: 324, tileBytes: 325, sampleFormat: 339,
} as const;

/** Reads the first image of a TIFF file; `label` names the file in errors. */
export function readTiff(b: Uint8Array, label: string): TiffRaster {
  if (!isTiff(b)) throw new TiffError(`${label}: not a TIFF file`);
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const little = b[0] === 0x49;
  const u16 = (o: number) => view.getUint16(o, little);
  const u32 = (o: number) => view.getUint32(o, little);
  const typeSize: Record<number, number> = { 1: 1, 3: 2, 4: 4, 16: 8 };
  const tags = new Map<number, number[]>();
  try {
    const ifd = u32(4);
    const n = u16(ifd);
    for (let i = 0; i < n; i++) {
      const e = ifd + 2 + i * 12;
      const tag = u16(e), type = u16(e + 2), count = u32(e + 4);
      const size = typeSize[type];
      if (!size) continue; // rational, ASCII…: none of the tags read here
      const at = size * count <= 4 ? e + 8 : u32(e + 8);
      const values: number[] = [];
      for (let k = 0; k < count; k++) {
        const o = at + k * size;
        values.push(size === 1 ? b[o]! : size === 2 ? u16(o) : size === 4 ? u32(o) : Number(view.getBigUint64(o, little)));
      }
      tags.set(tag, values);
    }
  } catch {
    throw new TiffError(`${label}: truncated TIFF directory`);
  }
  const one = (t: number, fallback?: number): number => {
    const v = tags.get(t)?.[0] ?? fallback;
    if (v === undefined) throw new TiffError(`${label}: TIFF tag ${t} is missing`);
    return v;
  };
  const width = one(TAG.width), height = one(TAG.height), bands = one(TAG.samples, 1);
  const bitsList = tags.get(TAG.bits) ?? [1];
  const bits = bitsList[0]!;
  const format = one(TAG.sampleFormat, 1);
  if (bitsList.some((x) => x !== bits)) throw new TiffError(`${label}: bands of different bit depths (${bitsList.join(', ')}) are not supported`);
  if (!((format === 1 && (bits === 8 || bits === 16)) || (format === 3 && bits === 32))) {
    throw new TiffError(`${label}: ${bits}-bit samples of format ${format} are not supported (expected 8/16-bit unsigned or 32-bit float)`);
  }
  const compression = one(TAG.compression, 1);
  if (compression !== 1 && compression !== 8 && compression !== 32946 && compression !== 32773) {
    throw new TiffError(`${label}: TIFF compression ${compression} is not supported (expected none, PackBits or Deflate)`);
  }
  const predictor = one(TAG.predictor, 1);
  if (predictor !== 1 && !(predictor === 2 && format === 1)) throw new TiffError(`${label}: TIFF predictor ${predictor} is not supported`);
  const planar = one(TAG.planar, 1) === 2;
  const bytesPer = bits / 8;
  const tiled = tags.has(TAG.tileOffsets);
  const chunkW = tiled ? one(TAG.tileWidth) : width;
  const chunkH = tiled ? one(TAG.tileLength) : Math.min(one(TAG.rowsPerStrip, height), height);
  const offsets = tags.get(tiled ? TAG.tileOffsets : TAG.stripOffsets) ?? [];
  const counts = tags.get(tiled ? TAG.tileBytes : TAG.stripBytes) ?? [];
  const across = Math.ceil(width / chunkW), down = Math.ceil(height / chunkH);
  const planes = planar ? bands : 1, spp = planar ? 1 : bands;
  if (offsets.length < across * down * planes) throw new TiffError(`${label}: ${offsets.length} data chunks, expected ${across * down * planes}`);

  const out = new Uint8Array(width * height * bands * bytesPer);
  const rowBytes = chunkW * spp * bytesPer;
  for (let p = 0; p < planes; p++) {
    for (let cy = 0; cy < down; cy++) {
      for (let cx = 0; cx < across; cx++) {
        const index = p * across * down + cy * across + cx;
        const raw = b.subarray(offsets[index]!, offsets[index]! + counts[index]!);
        const rows = tiled ? chunkH : Math.min(chunkH, height - cy * chunkH);
        const chunk = decompress(raw, compression, rows * rowBytes, label);
        if (chunk.length < rows * rowBytes) throw new TiffError(`${label}: data chunk ${index} has ${chunk.length} bytes, expected ${rows * rowBytes}`);
        for (let y = 0; y < rows; y++) {
          const iy = cy * chunkH + y;
          if (iy >= height) break;
          const line = chunk.subarray(y * rowBytes, (y + 1) * rowBytes);
          if (predictor === 2) undoDifferencing(line, chunkW, spp, bytesPer, little);
          for (let x = 0; x < chunkW; x++) {
            const ix = cx * chunkW + x;
            if (ix >= width) break;
            for (let s = 0; s < spp; s++) {
              const band = planar ? p : s;
              const src = (x * spp + s) * bytesPer, dst = ((iy * width + ix) * bands + band) * bytesPer;
              for (let k = 0; k < bytesPer; k++) out[dst + k] = line[src + k]!;
            }
          }
        }
      }
    }
  }
  return { data: samplesOf(out, bits, little), width, height, bands, bitsPerSample: bits as 8 | 16 | 32 };
}

function decompress(raw: Uint8Array, compression: number, expected: number, label: string): Uint8Array {
  if (compression === 1) return raw;
  if (compression === 32773) return unpackBits(raw, expected);
  try {
    return new Uint8Array(inflateSync(raw));
  } catch (e) {
    throw new TiffError(`${label}: a Deflate data chunk does not decompress (${(e as Error).message})`);
  }
}

/** PackBits (Apple's run-length code, TIFF compression 32773). */
function unpackBits(src: Uint8Array, expected: number): Uint8Array {
  const out = new Uint8Array(expected);
  let i = 0, o = 0;
  while (i < src.length && o < expected) {
    const n = (src[i++]! << 24) >> 24;
    if (n >= 0) for (let k = 0; k <= n && o < expected; k++) out[o++] = src[i++]!;
    else if (n !== -128) { const v = src[i++]!; for (let k = 0; k < 1 - n && o < expected; k++) out[o++] = v; }
  }
  return out;
}

/** Predictor 2: each sample was stored as its difference to the same band of the previous pixel. */
function undoDifferencing(line: Uint8Array, width: number, spp: number, bytesPer: number, little: boolean): void {
  if (bytesPer === 1) {
    for (let i = spp; i < width * spp; i++) line[i] = (line[i]! + line[i - spp]!) & 0xff;
    return;
  }
  const v = new DataView(line.buffer, line.byteOffset, line.byteLength);
  for (let i = spp; i < width * spp; i++) v.setUint16(i * 2, (v.getUint16(i * 2, little) + v.getUint16((i - spp) * 2, little)) & 0xffff, little);
}

/** The bytes as typed samples in host order (copied, so the result is aligned). */
function samplesOf(bytes: Uint8Array, bits: number, little: boolean): Uint8Array | Uint16Array | Float32Array {
  if (bits === 8) return bytes;
  const v = new DataView(bytes.buffer);
  if (bits === 16) return Uint16Array.from({ length: bytes.length / 2 }, (_, i) => v.getUint16(i * 2, little));
  return Float32Array.from({ length: bytes.length / 4 }, (_, i) => v.getFloat32(i * 4, little));
}
