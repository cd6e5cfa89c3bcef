/** Decoding with sharp: every format, EXIF orientation, channel conversions, and errors that name the file. */
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { decodeFull, decodeResizedCrop, ImageDecodeError, jpegHeader } from '../../src/data/image/image_decode.js';
import { evalSample } from '../../src/data/transforms/image_pipeline.js';
import { loadImageForModel } from '../../src/data/image/image.js';
import { toGrayscale } from '../../src/data/transforms/pixels.js';
import { gradientImage, rawRgb } from './image_folder_fixture.js';

const W = 24, H = 16;
const reference = gradientImage(W, H, 5);
const meanAbs = (a: Uint8Array, b: Uint8Array) => a.reduce((s, v, i) => s + Math.abs(v - b[i]!), 0) / a.length;

describe('decoding', () => {
  it.each([
    ['png', (s: sharp.Sharp) => s.png(), 0],
    ['webp (lossless)', (s: sharp.Sharp) => s.webp({ lossless: true }), 0],
    ['tiff (lzw)', (s: sharp.Sharp) => s.tiff({ compression: 'lzw' }), 0],
    ['jpeg', (s: sharp.Sharp) => s.jpeg({ quality: 95 }), 12],
    ['avif', (s: sharp.Sharp) => s.avif({ quality: 90 }), 8],
    ['gif (palette)', (s: sharp.Sharp) => s.gif(), 12],
    ['16-bit png', (s: sharp.Sharp) => s.toColourspace('rgb16').png(), 0.5],
    ['png with alpha (dropped, not composited)', (s: sharp.Sharp) => s.ensureAlpha(0.3).png(), 0],
  ])('%s decodes to 8-bit RGB close to the source', async (_, encode, tolerance) => {
    const bytes = await encode(rawRgb(W, H, 5)).toBuffer();
    const img = await decodeFull(bytes, 'x');
    expect([img.width, img.height, img.channels]).toEqual([W, H, 3]);
    expect(meanAbs(img.data, reference)).toBeLessThanOrEqual(tolerance);
  });

  it('decodes the first frame of an animated GIF', async () => {
    const frames = Buffer.concat([Buffer.alloc(W * H * 3, 200), Buffer.alloc(W * H * 3, 20)]);
    const gif = await sharp(frames, { raw: { width: W, height: H * 2, channels: 3, pageHeight: H } as sharp.CreateRaw }).gif().toBuffer();
    expect((await sharp(gif, { pages: -1 }).metadata()).pages).toBe(2);
    const img = await decodeFull(gif, 'anim.gif');
    expect(img.height).toBe(H);
    expect(meanAbs(img.data, new Uint8Array(W * H * 3).fill(200))).toBeLessThan(3);
  });

  it('converts CMYK JPEGs to sRGB', async () => {
    const red = Buffer.alloc(W * H * 3);
    for (let i = 0; i < W * H; i++) red.set([220, 30, 40], i * 3);
    const cmyk = await sharp(red, { raw: { width: W, height: H, channels: 3 } }).toColourspace('cmyk').jpeg({ quality: 95 }).toBuffer();
    expect((await sharp(cmyk).metadata()).space).toBe('cmyk');
    const img = await decodeFull(cmyk, 'cmyk.jpg');
    const [r, g, b] = [img.data[0]!, img.data[1]!, img.data[2]!];
    expect(r).toBeGreaterThan(180);
    expect(g).toBeLessThan(90);
    expect(b).toBeLessThan(90);
  });

  it('applies EXIF orientation before cropping', async () => {
    // stored landscape 24×16 with orientation 6 (rotate 90° clockwise to view): seen as 16×24
    const bytes = await rawRgb(W, H, 5).png().withMetadata({ orientation: 6 }).toBuffer();
    const viewed = await sharp(bytes).rotate().raw().toBuffer();
    const img = await decodeFull(bytes, 'rotated.png');
    expect([img.width, img.height]).toEqual([H, W]);
    expect(Buffer.from(img.data)).toEqual(viewed);
    const seen: number[][] = [];
    const crop = await decodeResizedCrop(bytes, (w, h) => {
      seen.push([w, h]);
      return { box: { top: 20, left: 0, height: 4, width: 16 }, interpolation: 'bilinear' };
    }, 16, 4, 'rotated.png');
    expect(seen).toEqual([[16, 24]]);
    expect(Buffer.from(crop.data)).toEqual(viewed.subarray(20 * 16 * 3));
  });

  it("reads a JPEG's size and EXIF orientation from its markers as libvips does", async () => {
    const variants: [string, Buffer][] = [
      ['baseline', await rawRgb(W, H, 5).jpeg().toBuffer()],
      ['progressive', await rawRgb(W, H, 5).jpeg({ progressive: true }).toBuffer()],
      ['cmyk', await rawRgb(W, H, 5).toColourspace('cmyk').jpeg().toBuffer()],
      ['grayscale', await rawRgb(W, H, 5).toColourspace('b-w').jpeg().toBuffer()],
      ...await Promise.all([1, 3, 6, 8].map(async (o) => [`orientation ${o}`, await rawRgb(W, H, 5).jpeg().withMetadata({ orientation: o }).toBuffer()] as [string, Buffer])),
    ];
    for (const [name, bytes] of variants) {
      const meta = await sharp(bytes).metadata();
      expect(jpegHeader(bytes), name).toEqual({ width: meta.width, height: meta.height, orientation: meta.orientation ?? 1 });
    }
    // two EXIF segments: libvips reads the first one (orientation 6), and so must the header and the decoder
    const first = await rawRgb(W, H, 5).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    const app1 = (bytes: Buffer) => {
      const at = bytes.indexOf(Buffer.from('Exif\0\0', 'binary')) - 4;
      return bytes.subarray(at, at + 2 + bytes.readUInt16BE(at + 2));
    };
    const second = app1(await rawRgb(W, H, 5).jpeg().withMetadata({ orientation: 1 }).toBuffer());
    const firstEnd = first.indexOf(app1(first)) + app1(first).length;
    const twoExif = Buffer.concat([first.subarray(0, firstEnd), second, first.subarray(firstEnd)]);
    expect((await sharp(twoExif).metadata()).orientation).toBe(6);
    expect(jpegHeader(twoExif)).toEqual({ width: W, height: H, orientation: 6 });
    const decoded = await decodeFull(twoExif, 'two-exif.jpg');
    expect([decoded.width, decoded.height]).toEqual([H, W]);
    // not a JPEG, or cut before the frame header: left to sharp
    expect(jpegHeader(await rawRgb(W, H, 5).png().toBuffer())).toBeUndefined();
    expect(jpegHeader(variants[0]![1].subarray(0, 20))).toBeUndefined();
    expect(jpegHeader(new Uint8Array([0xff, 0xd8, 0x00, 0x01]))).toBeUndefined();
  });

  it('grayscale inputs become RGB or stay one channel with PIL weights', async () => {
    const gray = await rawRgb(W, H, 5).toColourspace('b-w').png().toBuffer();
    const rgb = await decodeFull(gray, 'g.png');
    expect(rgb.channels).toBe(3);
    for (let i = 0; i < W * H; i++) expect(rgb.data[3 * i]).toBe(rgb.data[3 * i + 2]);
    const t = { inputSize: [1, H, W] as const, cropPct: 1, interpolation: 'bilinear' as const, mean: [0], std: [1] };
    const x = await evalSample(gray, t);
    x.forEach((v, i) => expect(Math.round(v * 255)).toBe(rgb.data[3 * i]));
    // an RGB photo for a 1-channel model: PIL's convert('L')
    const fromRgb = await evalSample(await rawRgb(W, H, 5).png().toBuffer(), t);
    const L = toGrayscale({ data: new Uint8Array(reference), width: W, height: H, channels: 3 }).data;
    fromRgb.forEach((v, i) => expect(Math.round(v * 255)).toBe(L[i]));
  });

  it('errors name the file and say what is wrong', async () => {
    const jpeg = await rawRgb(W, H, 5).jpeg().toBuffer();
    await expect(decodeFull(jpeg.subarray(0, jpeg.length - 100), 'cut.jpg')).rejects.toThrow(/^cut\.jpg: could not decode \(.*(premature|end)/i);
    await expect(decodeFull(Buffer.from('hello, not an image'), 'note.png')).rejects.toThrow(/^note\.png: not a readable image/);
    await expect(decodeFull(Buffer.alloc(0), 'empty.jpg')).rejects.toThrow(ImageDecodeError);
    await expect(loadImageForModel('/nonexistent/x.png', { inputSize: [3, 8, 8], cropPct: 1, interpolation: 'bilinear', mean: [0], std: [1] })).rejects.toThrow(/\/nonexistent\/x\.png/);
  });
});
