/**
 * Encoding images with sharp: SVG → PNG for the training report's charts. sharp renders SVG
 * with librsvg, which finds fonts through fontconfig, so chart text uses the system's
 * sans-serif (DejaVu Sans on most Linux images).
 */
import sharp from 'sharp';

export interface SvgToPngOptions {
  /** Rasterisation density in dpi; sharp maps 72 dpi to one pixel per SVG unit, so 144 is 2× (crisp text). Default 144. */
  density?: number;
}

export async function svgToPng(svg: string, opts: SvgToPngOptions = {}): Promise<Buffer> {
  const density = opts.density ?? 144;
  if (!(density > 0 && density <= 2400)) throw new RangeError(`svgToPng: density must be in (0, 2400] dpi, got ${density}`);
  try {
    return await sharp(Buffer.from(svg, 'utf8'), { density, failOn: 'error' }).png({ compressionLevel: 9 }).toBuffer();
  } catch (e) {
    throw new Error(`svgToPng: could not rasterise the SVG (${svg.length} chars, starting ${JSON.stringify(svg.slice(0, 40))}): ${(e as Error).message}`);
  }
}
