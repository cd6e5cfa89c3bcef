/**
 * A per-pixel class map drawn over its image as a PNG: each class a colour of the turbo map,
 * blended half and half with the image so the ground stays visible, tile edges unmarked.
 */
import sharp from 'sharp';
import { colormap, toRgb8, type PixelImage } from './image_overlay.js';

export function classColour(k: number, classes: number): [number, number, number] {
  return colormap('turbo', classes > 1 ? k / (classes - 1) : 0.5);
}

/** `img` [C, H, W] in [0, 1] and `map` [H·W] class indices of the same size → PNG bytes. */
export async function classMapPng(img: PixelImage, map: Int32Array, classes: number, alpha = 0.5): Promise<Buffer> {
  const rgb = toRgb8(img);
  const palette = Array.from({ length: classes }, (_, k) => classColour(k, classes));
  for (let i = 0; i < map.length; i++) {
    const c = palette[map[i]!]!;
    for (let k = 0; k < 3; k++) rgb[i * 3 + k] = Math.round((1 - alpha) * rgb[i * 3 + k]! + alpha * c[k]!);
  }
  return sharp(rgb, { raw: { width: img.width, height: img.height, channels: 3 } }).png({ compressionLevel: 6 }).toBuffer();
}
