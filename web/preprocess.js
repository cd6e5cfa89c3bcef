/**
 * The eval transform in the browser, matching the server's (src/data/transforms/image_pipeline.ts, timm's
 * eval transform with PIL semantics):
 *   1. RGB, alpha dropped;
 *   2. resize the shorter side to floor(size / crop_pct), the longer keeping the aspect ratio
 *      (truncated): enlarging as PIL's Image.resize, shrinking as libvips (sharp) does it;
 *   3. centre crop size × size (torchvision: Python rounding, zero padding if too small);
 *   4. 1-channel models: PIL's convert('L') (ITU-R 601-2 luma on the 8-bit values);
 *   5. scale to [0, 1] and normalise with the model's mean/std → float NCHW.
 * Pure functions over RGBA pixels, so Node tests compare them with the server's output
 * (test/serve/preprocess_parity.test.ts). What still differs: the browser decodes the file
 * (JPEG decoders and colour-profile handling can move pixels by a level or so) and a canvas
 * stores premultiplied alpha, so fully transparent pixels lose their colour.
 */

/** torchvision Resize(int): the shorter side becomes `size`. */
export function resizeShorterSide(w, h, size) {
  return w <= h ? [size, Math.floor((size * h) / w)] : [Math.floor((size * w) / h), size];
}

/** RGBA → interleaved RGB (alpha dropped, as PIL's convert('RGB') and the server do). */
export function toRgb(rgba, width, height) {
  const n = width * height;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    out[3 * i] = rgba[4 * i];
    out[3 * i + 1] = rgba[4 * i + 1];
    out[3 * i + 2] = rgba[4 * i + 2];
  }
  return out;
}

/** PIL's convert('L'): L = (19595 R + 38470 G + 7471 B + 2^15) >> 16. */
export function toLuma(rgb) {
  const out = new Uint8Array(rgb.length / 3);
  for (let i = 0, j = 0; i < out.length; i++, j += 3) out[i] = (rgb[j] * 19595 + rgb[j + 1] * 38470 + rgb[j + 2] * 7471 + 0x8000) >>> 16;
  return out;
}

const KERNELS = {
  bilinear: { support: 1, f: (x) => { x = Math.abs(x); return x < 1 ? 1 - x : 0; } },
  bicubic: {
    support: 2,
    f: (x) => {
      const a = -0.5;
      x = Math.abs(x);
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
  },
};

/** libvips' reduce taps when shrinking: kernel centred at (o + 0.5)·scale, support widened by the scale, edges replicated. */
function vipsTaps(inSize, outSize, kernel, scale) {
  const support = kernel.support * scale;
  const out = [];
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const idx = [];
    const w = [];
    for (let i = Math.floor(center - support + 0.5); i < Math.floor(center + support + 0.5); i++) {
      idx.push(Math.min(inSize - 1, Math.max(0, i)));
      w.push(kernel.f((i - center + 0.5) / scale));
    }
    const sum = w.reduce((a, b) => a + b, 0);
    out.push({ idx, w: w.map((v) => v / sum) });
  }
  return out;
}

/** One axis of interleaved uint8 pixels through `taps`, rounded to uint8. */
function resampleAxis(src, w, h, channels, outLen, horizontal, taps) {
  const ow = horizontal ? outLen : w;
  const oh = horizontal ? h : outLen;
  const dst = new Uint8Array(ow * oh * channels);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      const { idx, w: wt } = taps[horizontal ? x : y];
      for (let c = 0; c < channels; c++) {
        let acc = 0;
        for (let k = 0; k < idx.length; k++) acc += wt[k] * src[((horizontal ? y : idx[k]) * w + (horizontal ? idx[k] : x)) * channels + c];
        dst[(y * ow + x) * channels + c] = Math.min(255, Math.max(0, Math.round(acc)));
      }
    }
  }
  return dst;
}

/** Box-averages groups of `factor` pixels along one axis; a partial last group repeats the edge. */
function boxShrink(src, w, h, channels, factor, horizontal) {
  const outLen = Math.round((horizontal ? w : h) / factor);
  const ow = horizontal ? outLen : w;
  const oh = horizontal ? h : outLen;
  const last = (horizontal ? w : h) - 1;
  const dst = new Uint8Array(ow * oh * channels);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      for (let c = 0; c < channels; c++) {
        let acc = 0;
        for (let k = 0; k < factor; k++) {
          const i = Math.min(last, (horizontal ? x : y) * factor + k);
          acc += src[((horizontal ? y : i) * w + (horizontal ? i : x)) * channels + c];
        }
        dst[(y * ow + x) * channels + c] = Math.round(acc / factor);
      }
    }
  }
  return { data: dst, len: outLen };
}

/**
 * Shrinking as sharp's resize({ fit: 'fill', kernel }) does it (measured against sharp): a box
 * pre-shrink by floor(in / (2·out)) when that is 2 or more (libvips' reducing gap of 2), then the
 * kernel over the remaining factor (from the unrounded size), vertical pass first.
 */
export function shrinkLikeLibvips(pixels, width, height, channels, outW, outH, interpolation) {
  const kernel = KERNELS[interpolation] ?? KERNELS.bilinear;
  let data = pixels;
  let w = width;
  let h = height;
  const vShrink = Math.max(1, Math.floor(height / (2 * outH)));
  const hShrink = Math.max(1, Math.floor(width / (2 * outW)));
  if (vShrink >= 2) ({ data, len: h } = boxShrink(data, w, h, channels, vShrink, false));
  if (hShrink >= 2) ({ data, len: w } = boxShrink(data, w, h, channels, hShrink, true));
  const vScale = height / vShrink / outH;
  const hScale = width / hShrink / outW;
  if (outH !== h || vScale !== 1) data = resampleAxis(data, w, h, channels, outH, false, vipsTaps(h, outH, kernel, vScale));
  if (outW !== w || hScale !== 1) data = resampleAxis(data, w, outH, channels, outW, true, vipsTaps(w, outW, kernel, hScale));
  return data;
}

const PIL_BITS = 22;

/** PIL's precompute_coeffs + normalize_coeffs_8bpc: truncated windows (no edge replication), 22-bit fixed point. */
function pilTaps(inSize, outSize, kernel) {
  const scale = inSize / outSize;
  const filterScale = Math.max(1, scale);
  const support = kernel.support * filterScale;
  const out = [];
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const lo = Math.max(0, Math.trunc(center - support + 0.5));
    const hi = Math.min(inSize, Math.trunc(center + support + 0.5));
    const w = [];
    for (let i = lo; i < hi; i++) w.push(kernel.f((i - center + 0.5) / filterScale));
    const sum = w.reduce((a, b) => a + b, 0);
    const fixed = w.map((v) => {
      const n = sum !== 0 ? v / sum : v;
      return n < 0 ? Math.trunc(-0.5 + n * 2 ** PIL_BITS) : Math.trunc(0.5 + n * 2 ** PIL_BITS);
    });
    out.push({ lo, w: fixed });
  }
  return out;
}

function pilAxis(src, w, h, channels, outLen, horizontal, taps) {
  const ow = horizontal ? outLen : w;
  const oh = horizontal ? h : outLen;
  const dst = new Uint8Array(ow * oh * channels);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      const { lo, w: wt } = taps[horizontal ? x : y];
      for (let c = 0; c < channels; c++) {
        let acc = 2 ** (PIL_BITS - 1);
        for (let k = 0; k < wt.length; k++) acc += wt[k] * src[((horizontal ? y : lo + k) * w + (horizontal ? lo + k : x)) * channels + c];
        dst[(y * ow + x) * channels + c] = acc <= 0 ? 0 : acc >= 256 * 2 ** PIL_BITS ? 255 : Math.floor(acc / 2 ** PIL_BITS);
      }
    }
  }
  return dst;
}

/** PIL's Image.resize((outW, outH), BILINEAR | BICUBIC) on 8-bit pixels: horizontal pass first. */
export function resizeLikePil(pixels, width, height, channels, outW, outH, interpolation) {
  const kernel = KERNELS[interpolation] ?? KERNELS.bilinear;
  let data = pixels;
  if (outW !== width) data = pilAxis(data, width, height, channels, outW, true, pilTaps(width, outW, kernel));
  if (outH !== height) data = pilAxis(data, outW, height, channels, outH, false, pilTaps(height, outH, kernel));
  return data;
}

/** The server's resize: unchanged at the same size, PIL when enlarging either axis, libvips when shrinking. */
export function resize(pixels, width, height, channels, outW, outH, interpolation) {
  if (outW === width && outH === height) return pixels;
  const resizeFn = outW > width || outH > height ? resizeLikePil : shrinkLikeLibvips;
  return resizeFn(pixels, width, height, channels, outW, outH, interpolation);
}

/** Python's round(): halves go to the even neighbour (torchvision's crop offsets). */
function pythonRound(v) {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** torchvision CenterCrop: offsets round((size − crop) / 2); a crop larger than the image is zero-padded. */
export function centerCrop(pixels, width, height, channels, th, tw) {
  const offset = (size, crop) => (crop > size ? -Math.floor((crop - size) / 2) : pythonRound((size - crop) / 2));
  const top = offset(height, th);
  const left = offset(width, tw);
  const out = new Uint8Array(th * tw * channels);
  for (let y = 0; y < th; y++) {
    const sy = y + top;
    if (sy < 0 || sy >= height) continue;
    for (let x = 0; x < tw; x++) {
      const sx = x + left;
      if (sx < 0 || sx >= width) continue;
      for (let c = 0; c < channels; c++) out[(y * tw + x) * channels + c] = pixels[(sy * width + sx) * channels + c];
    }
  }
  return out;
}

/**
 * RGBA pixels of a decoded image → { pixels: uint8 HWC crop, tensor: float32 NCHW normalised }.
 * `meta` is GET /v1/model's JSON (input_size [C, H, W], crop_pct, interpolation, mean, std).
 */
export function preprocess(rgba, width, height, meta) {
  const [c, h, w] = meta.input_size;
  const [rw, rh] = resizeShorterSide(width, height, Math.floor(Math.min(h, w) / meta.crop_pct));
  const resized = resize(toRgb(rgba, width, height), width, height, 3, rw, rh, meta.interpolation);
  const rgb = centerCrop(resized, rw, rh, 3, h, w);
  const pixels = c === 1 ? toLuma(rgb) : rgb;
  const tensor = new Float32Array(c * h * w);
  for (let ch = 0; ch < c; ch++) {
    // torchvision's float32 order, each step rounded to float32, as the server computes it
    const f = Math.fround;
    const m = f(meta.mean[ch] ?? meta.mean[0]);
    const s = f(meta.std[ch] ?? meta.std[0]);
    for (let i = 0; i < h * w; i++) tensor[ch * h * w + i] = f(f(f(pixels[i * c + ch] / 255) - m) / s);
  }
  return { pixels, tensor };
}
