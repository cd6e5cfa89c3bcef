/**
 * torchvision ColorJitter on PIL images: brightness, contrast and saturation factors drawn from
 * [max(0, 1 − s), 1 + s], hue from [−h, h], applied in a random order (torch.randperm(4)).
 */
import type { Random } from '../../random.js';
import { adjustBrightness, adjustContrast, adjustHue, adjustSaturation, advance, type PixelImage } from './pixels.js';

/** Jitter strengths; 0 disables one. timm's `--color-jitter 0.4` means brightness = contrast = saturation = 0.4, hue 0. */
export interface ColorJitterStrength { brightness: number; contrast: number; saturation: number; hue: number }

/** Consumes `img` (its buffer may be recycled). */
export function colorJitter(img: PixelImage, s: ColorJitterStrength, rng: Random): PixelImage {
  const order = [0, 1, 2, 3];
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const factor = (v: number) => (v > 0 ? Math.max(0, 1 - v) + rng.uniform() * (1 + v - Math.max(0, 1 - v)) : undefined);
  const b = factor(s.brightness), c = factor(s.contrast), sat = factor(s.saturation);
  const hue = s.hue > 0 ? -s.hue + rng.uniform() * 2 * s.hue : undefined;
  for (const op of order) {
    if (op === 0 && b !== undefined) img = advance(img, adjustBrightness(img, b));
    else if (op === 1 && c !== undefined) img = advance(img, adjustContrast(img, c));
    else if (op === 2 && sat !== undefined) img = advance(img, adjustSaturation(img, sat));
    else if (op === 3 && hue !== undefined) img = advance(img, adjustHue(img, hue));
  }
  return img;
}
