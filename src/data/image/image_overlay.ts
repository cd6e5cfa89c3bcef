/**
 * Pictures of explanation maps and adversarial examples: colormaps, heatmap overlays blended over
 * the image, grids of per-layer/per-head maps, plain image PNGs, and raw maps as NumPy `.npy`.
 * Maps are min–max normalised per picture for display; the raw values go to JSON/NPY.
 */
import sharp from 'sharp';
import { normaliseMinMax, resizeBilinear } from '../../explain/maps.js';

export const colormapNames = ['viridis', 'turbo'] as const;
export type ColormapName = (typeof colormapNames)[number];

// 17 evenly spaced anchors, linearly interpolated: viridis (matplotlib, perceptually uniform) and
// turbo (Google's improved rainbow), as d3-scale-chromatic samples them.
const ANCHORS: Record<ColormapName, string> = {
  viridis: '440154 48186a 472d7b 424086 3b528b 33638d 2c728e 26828e 21918c 1fa088 28ae80 3fbc73 5ec962 84d44b addc30 d8e219 fde725',
  turbo: '23171b 493eae 4569ee 3295f7 26bce1 29dcbc 3ff393 65fd6e 95fb51 c5ec3c ecd12e ffad24 ff821d f05616 cb2f0d a31302 900c00',
};
const TABLES = Object.fromEntries(Object.entries(ANCHORS).map(([name, hex]) =>
  [name, hex.split(' ').map((h) => [0, 2, 4].map((i) => parseInt(h.slice(i, i + 2), 16)))])) as Record<ColormapName, number[][]>;

/** The colour of v ∈ [0, 1] (clamped) as [r, g, b] in 0…255. */
export function colormap(name: ColormapName, v: number): [number, number, number] {
  const table = TABLES[name];
  const t = Math.min(1, Math.max(0, Number.isFinite(v) ? v : 0)) * (table.length - 1);
  const i = Math.min(Math.floor(t), table.length - 2);
  const f = t - i;
  const [a, b] = [table[i]!, table[i + 1]!];
  return [0, 1, 2].map((k) => Math.round(a[k]! + (b[k]! - a[k]!) * f)) as [number, number, number];
}

/** An image [C, H, W] with values in [0, 1] (1 or 3 channels). */
export interface PixelImage { data: Float32Array; channels: number; height: number; width: number }

/** Interleaved 8-bit RGB (grayscale replicated) of a [0, 1] image. */
export function toRgb8({ data, channels, height, width }: PixelImage): Uint8Array {
  const plane = height * width;
  const out = new Uint8Array(plane * 3);
  for (let i = 0; i < plane; i++) {
    for (let k = 0; k < 3; k++) out[i * 3 + k] = Math.round(255 * Math.min(1, Math.max(0, data[Math.min(k, channels - 1) * plane + i]!)));
  }
  return out;
}

const rawPng = (rgb: Uint8Array, width: number, height: number): Promise<Buffer> =>
  sharp(rgb, { raw: { width, height, channels: 3 } }).png({ compressionLevel: 9 }).toBuffer();

/** A [0, 1] image as a PNG at its own size (grayscale stays one channel). */
export async function imagePng(img: PixelImage): Promise<Buffer> {
  const rgb = toRgb8(img);
  if (img.channels !== 1) return rawPng(rgb, img.width, img.height);
  const gray = Uint8Array.from({ length: img.width * img.height }, (_, i) => rgb[i * 3]!);
  return sharp(gray, { raw: { width: img.width, height: img.height, channels: 1 } }).toColourspace('b-w').png({ compressionLevel: 9 }).toBuffer();
}

/** Integer upscale so the longer side reaches at least `min` pixels (28 → 224). */
export function displayScale(height: number, width: number, min = 224): number {
  return Math.max(1, Math.ceil(min / Math.max(height, width)));
}

export interface HeatmapOptions {
  /** Weight of the heatmap over the image, in [0, 1] (default 0.5). */
  alpha?: number;
  colormap?: ColormapName;
}

/** RGB heatmap of `map` [mh, mw] at [h, w], blended over `base` (RGB at [h, w]) when given. */
function blend(map: Float32Array, [mh, mw]: readonly [number, number], h: number, w: number, base: Uint8Array | undefined, o: HeatmapOptions): Uint8Array {
  const alpha = o.alpha ?? 0.5;
  if (!(alpha >= 0 && alpha <= 1)) throw new RangeError(`alpha must be in [0, 1], got ${alpha}`);
  const v = normaliseMinMax(resizeBilinear(map, mh, mw, h, w));
  const out = new Uint8Array(h * w * 3);
  for (let i = 0; i < h * w; i++) {
    const rgb = colormap(o.colormap ?? 'viridis', v[i]!);
    for (let k = 0; k < 3; k++) out[i * 3 + k] = Math.round(base ? (1 - alpha) * base[i * 3 + k]! + alpha * rgb[k]! : rgb[k]!);
  }
  return out;
}

/** The image upscaled (bicubic) to [h, w] as interleaved RGB. */
async function upscaledRgb(img: PixelImage, h: number, w: number): Promise<Uint8Array> {
  const raw = await sharp(toRgb8(img), { raw: { width: img.width, height: img.height, channels: 3 } })
    .resize({ width: w, height: h, fit: 'fill', kernel: sharp.kernel.cubic }).raw().toBuffer();
  return new Uint8Array(raw.buffer, raw.byteOffset, raw.length);
}

/** A PNG of the map's heatmap blended over the image, upscaled to a display size. */
export async function overlayPng(img: PixelImage, map: Float32Array, mapShape: readonly [number, number], o: HeatmapOptions & { minSize?: number } = {}): Promise<Buffer> {
  const s = displayScale(img.height, img.width, o.minSize);
  const [h, w] = [img.height * s, img.width * s];
  return rawPng(blend(map, mapShape, h, w, await upscaledRgb(img, h, w), o), w, h);
}

export interface GridTile { label: string; map: Float32Array }

export interface GridOptions extends HeatmapOptions {
  columns: number;
  /** Tile side in pixels (default 112). */
  tileSize?: number;
}

const escapeXml = (s: string) => s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** A PNG grid of labelled tiles, each map (normalised on its own) blended over the image. */
export async function gridPng(img: PixelImage, tiles: readonly GridTile[], mapShape: readonly [number, number], o: GridOptions): Promise<Buffer> {
  if (!tiles.length) throw new RangeError('gridPng: no tiles');
  const size = o.tileSize ?? 112;
  const cols = Math.max(1, Math.min(o.columns, tiles.length));
  const rows = Math.ceil(tiles.length / cols);
  const [label, gap] = [16, 4];
  const cellW = size + gap;
  const cellH = size + label + gap;
  const [width, height] = [cols * cellW + gap, rows * cellH + gap];
  const canvas = new Uint8Array(width * height * 3).fill(255);
  const base = await upscaledRgb(img, size, size);
  tiles.forEach((tile, t) => {
    const rgb = blend(tile.map, mapShape, size, size, base, o);
    const [x0, y0] = [gap + (t % cols) * cellW, gap + Math.floor(t / cols) * cellH + label];
    for (let y = 0; y < size; y++) canvas.set(rgb.subarray(y * size * 3, (y + 1) * size * 3), ((y0 + y) * width + x0) * 3);
  });
  const text = tiles.map((tile, t) =>
    `<text x="${gap + (t % cols) * cellW + size / 2}" y="${gap + Math.floor(t / cols) * cellH + label - 4}">${escapeXml(tile.label)}</text>`).join('');
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><g font-family="DejaVu Sans, sans-serif" font-size="11" text-anchor="middle" fill="#222">${text}</g></svg>`;
  return sharp(canvas, { raw: { width, height, channels: 3 } }).composite([{ input: Buffer.from(svg), top: 0, left: 0 }]).png({ compressionLevel: 9 }).toBuffer();
}

/** NumPy .npy (format 1.0) bytes of a float32 little-endian C-order array. */
export function npyBytes(data: Float32Array, shape: readonly number[]): Uint8Array {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new RangeError(`npy: shape [${shape.join(', ')}] needs ${count} values, got ${data.length}`);
  const dims = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${dims}, }`;
  // magic (6) + version (2) + length (2) + header, padded with spaces and a newline to a multiple of 64
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const out = new Uint8Array(10 + header.length + data.length * 4);
  out.set([0x93, ...Buffer.from('NUMPY', 'latin1'), 1, 0], 0);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(Buffer.from(header, 'latin1'), 10);
  const view = new DataView(out.buffer, 10 + header.length);
  data.forEach((v, i) => view.setFloat32(i * 4, v, true));
  return out;
}
