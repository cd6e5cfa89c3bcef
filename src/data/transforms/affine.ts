/**
 * PIL's Image.transform(AFFINE) and Image.rotate, which timm's RandAugment geometric ops call:
 * output pixel centre (x + ½, y + ½) samples the input at (a·x + b·y + c, d·x + e·y + f);
 * samples outside the input take the fill colour; inside, PIL's (unantialiased) bilinear or
 * bicubic (a = −1) filter with clamped edges.
 */
import { newPixelImage, type PixelImage } from './pixels.js';
import { affineWasm } from '../kernels/affine.js';

export type AffineMatrix = readonly [number, number, number, number, number, number];
export type AffineFilter = 'bilinear' | 'bicubic';

/** The transform, on WebAssembly where it loads (the JavaScript loop gives the same bytes). */
export function affineTransform(img: PixelImage, m: AffineMatrix, filter: AffineFilter, fill: readonly number[]): PixelImage {
  const { width: w, height: h, channels: c, data: src } = img;
  const out = newPixelImage(w, h, c);
  const dst = out.data;
  const fills = Array.from({ length: c }, (_, k) => fill[k] ?? fill[0]!);
  const bicubic = filter === 'bicubic';
  if (affineWasm(src, dst, w, h, c, m, bicubic, fills)) return out;
  const [a, b, cc, d, e, f] = m;
  const stride = w * c;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const xin = a * (x + 0.5) + b * (y + 0.5) + cc;
      const yin = d * (x + 0.5) + e * (y + 0.5) + f;
      const o = (y * w + x) * c;
      if (xin < 0 || xin >= w || yin < 0 || yin >= h) {
        for (let k = 0; k < c; k++) dst[o + k] = fills[k]!;
        continue;
      }
      const xf = xin - 0.5, yf = yin - 0.5;
      const x0 = Math.floor(xf), y0 = Math.floor(yf);
      const dx = xf - x0, dy = yf - y0;
      if (!bicubic) {
        // PIL's BILINEAR_BODY: clamped columns; the second row only if inside, else the first again
        const c0 = clampTo(x0, w) * c, c1 = clampTo(x0 + 1, w) * c;
        const r0 = clampTo(y0, h) * stride;
        const r1 = y0 + 1 >= 0 && y0 + 1 < h ? (y0 + 1) * stride : -1;
        for (let k = 0; k < c; k++) {
          const p0 = src[r0 + c0 + k]!, p1 = src[r0 + c1 + k]!;
          const v1 = p0 + (p1 - p0) * dx;
          let v2 = v1;
          if (r1 >= 0) {
            const q0 = src[r1 + c0 + k]!, q1 = src[r1 + c1 + k]!;
            v2 = q0 + (q1 - q0) * dx;
          }
          dst[o + k] = toByte(v1 + (v2 - v1) * dy);
        }
        continue;
      }
      // PIL's BICUBIC_BODY: four clamped columns; a row past the edge repeats the previous row's value
      const q0 = clampTo(x0 - 1, w) * c, q1 = clampTo(x0, w) * c, q2 = clampTo(x0 + 1, w) * c, q3 = clampTo(x0 + 2, w) * c;
      const r0 = clampTo(y0 - 1, h) * stride;
      const r1 = y0 >= 0 && y0 < h ? y0 * stride : r0;
      const r2 = y0 + 1 >= 0 && y0 + 1 < h ? (y0 + 1) * stride : r1;
      const r3 = y0 + 2 >= 0 && y0 + 2 < h ? (y0 + 2) * stride : r2;
      for (let k = 0; k < c; k++) {
        const v1 = cubic(src[r0 + q0 + k]!, src[r0 + q1 + k]!, src[r0 + q2 + k]!, src[r0 + q3 + k]!, dx);
        const v2 = cubic(src[r1 + q0 + k]!, src[r1 + q1 + k]!, src[r1 + q2 + k]!, src[r1 + q3 + k]!, dx);
        const v3 = cubic(src[r2 + q0 + k]!, src[r2 + q1 + k]!, src[r2 + q2 + k]!, src[r2 + q3 + k]!, dx);
        const v4 = cubic(src[r3 + q0 + k]!, src[r3 + q1 + k]!, src[r3 + q2 + k]!, src[r3 + q3 + k]!, dx);
        dst[o + k] = toByte(cubic(v1, v2, v3, v4, dy));
      }
    }
  }
  return out;
}

const clampTo = (v: number, n: number) => (v < 0 ? 0 : v < n ? v : n - 1);
const toByte = (v: number) => (v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v));

// PIL's BICUBIC macro: the a = −1 cubic through four samples
const cubic = (v1: number, v2: number, v3: number, v4: number, d: number): number =>
  v2 + d * (-v1 + v3 + d * (2 * (v1 - v2) + v3 - v4 + d * (-v1 + v2 - v3 + v4)));

/** PIL Image.rotate(degrees) about the centre, counter-clockwise, same canvas (expand=False). */
export function rotationMatrix(width: number, height: number, degrees: number): AffineMatrix {
  const angle = -(degrees * Math.PI) / 180;
  const round15 = (v: number) => Math.round(v * 1e15) / 1e15;
  const [a, b, d, e] = [round15(Math.cos(angle)), round15(Math.sin(angle)), round15(-Math.sin(angle)), round15(Math.cos(angle))];
  const [cx, cy] = [width / 2, height / 2];
  return [a, b, a * -cx + b * -cy + cx, d, e, d * -cx + e * -cy + cy];
}

export function rotate(img: PixelImage, degrees: number, filter: AffineFilter, fill: readonly number[]): PixelImage {
  if (degrees % 360 === 0) return img;
  return affineTransform(img, rotationMatrix(img.width, img.height, degrees), filter, fill);
}
