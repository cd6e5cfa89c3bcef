/**
 * The page: choose or drop an image, classify it on the server or in the browser, show the top 5
 * as bars and, when the model has an attention_map output, the attention rollout over the image.
 */
import { preprocess } from './preprocess.js';
import { loadBrowserModel, runInBrowser } from './browser_model.js';

const $ = (id) => document.getElementById(id);
const fileInput = $('file-input');
const dropZone = $('drop-zone');
const preview = $('preview');
const fileName = $('file-name');
const toggle = $('in-browser');
const statusEl = $('status');
const results = $('results');
const overlay = $('attention-overlay');
const showAttention = $('show-attention');
const TOP = 5;

let meta;
let current; // the File being shown
let previewUrl;
let attention; // { grid: [gh, gw], values in [0, 1] } of the current image, when the model gives one

function setStatus(text, state) {
  statusEl.textContent = text;
  statusEl.dataset.state = state;
}

function topK(logits, labels, k) {
  const m = Math.max(...logits);
  const e = Array.from(logits, (v) => Math.exp(v - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v, index) => ({ label: labels[index] ?? String(index), index, probability: v / z }))
    .sort((a, b) => b.probability - a.probability || a.index - b.index)
    .slice(0, k);
}

function render(top, where, ms) {
  results.replaceChildren(...top.map((t) => {
    const li = document.createElement('li');
    li.dataset.label = t.label;
    li.dataset.index = String(t.index);
    const pct = `${(100 * t.probability).toFixed(1)}%`;
    const label = Object.assign(document.createElement('span'), { className: 'label', textContent: t.label });
    const bar = Object.assign(document.createElement('span'), { className: 'bar' });
    bar.setAttribute('aria-hidden', 'true');
    const fill = document.createElement('span');
    fill.style.setProperty('--p', `${(100 * t.probability).toFixed(2)}%`);
    bar.append(fill);
    const value = Object.assign(document.createElement('span'), { className: 'pct', textContent: pct });
    li.append(label, bar, value);
    return li;
  }));
  results.dataset.mode = where;
  const best = top[0];
  setStatus(`${best.label} (${(100 * best.probability).toFixed(1)}%), classified ${where === 'browser' ? 'in this browser' : 'by the server'} in ${ms.toFixed(0)} ms`, 'done');
  statusEl.dataset.mode = where;
  statusEl.dataset.top1 = best.label;
}

/** Decodes an image file to RGBA pixels at its own size (EXIF orientation applied, as sharp does). */
async function decode(file) {
  const bitmap = await createImageBitmap(file, { imageOrientation: 'from-image', premultiplyAlpha: 'none' });
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  return ctx.getImageData(0, 0, canvas.width, canvas.height);
}

async function preprocessFile(file) {
  const img = await decode(file);
  return preprocess(img.data, img.width, img.height, meta);
}

/** Blue (low) → red (high), through a dim green; alpha comes from the overlay's CSS opacity. */
function heatColor(v) {
  return [Math.round(255 * v), Math.round(160 * (1 - Math.abs(2 * v - 1))), Math.round(255 * (1 - v))];
}

/** The map min-max scaled to [0, 1], as the server sends it. */
function normalise(map) {
  const lo = Math.min(...map);
  const range = Math.max(...map) - lo;
  return Array.from(map, (v) => (range > 0 ? (v - lo) / range : 0));
}

/** Draws `attention` over the part of the preview the model sees (the centre crop), smoothly upscaled. */
async function drawAttention() {
  overlay.hidden = true;
  const shown = attention;
  if (!shown || !showAttention.checked || preview.hidden) return;
  await preview.decode().catch(() => undefined);
  if (shown !== attention) return; // another image arrived meanwhile
  const [gh, gw] = shown.grid;
  const cells = new ImageData(gw, gh);
  shown.values.forEach((v, i) => {
    cells.data.set([...heatColor(v), 255], 4 * i);
  });
  const small = new OffscreenCanvas(gw, gh);
  small.getContext('2d').putImageData(cells, 0, 0);
  // the crop as a fraction of the image: shorter side to size / crop_pct, then size × size
  const [, h, w] = meta.input_size;
  const shorter = Math.min(preview.naturalWidth, preview.naturalHeight) || 1;
  const scale = shorter / Math.floor(Math.min(h, w) / meta.crop_pct);
  const fw = Math.min(1, (w * scale) / (preview.naturalWidth || 1));
  const fh = Math.min(1, (h * scale) / (preview.naturalHeight || 1));
  Object.assign(overlay.style, {
    left: `${(50 * (1 - fw)).toFixed(3)}%`, top: `${(50 * (1 - fh)).toFixed(3)}%`,
    width: `${(100 * fw).toFixed(3)}%`, height: `${(100 * fh).toFixed(3)}%`,
  });
  const dpr = window.devicePixelRatio || 1;
  overlay.width = Math.max(gw, Math.round(preview.clientWidth * fw * dpr));
  overlay.height = Math.max(gh, Math.round(preview.clientHeight * fh * dpr));
  const ctx = overlay.getContext('2d');
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(small, 0, 0, overlay.width, overlay.height);
  overlay.hidden = false;
}

async function classifyOnServer(file) {
  const response = await fetch('/v1/predict', {
    method: 'POST',
    headers: { 'Content-Type': file.type || 'application/octet-stream' },
    body: file,
  });
  const body = await response.json();
  if (!response.ok) throw new Error(body.message ?? `HTTP ${response.status}`);
  return body;
}

async function classifyInBrowser(file) {
  const { logits, attention: map } = await runInBrowser(meta, await preprocessFile(file));
  const grid = meta.attention_map?.grid ?? [Math.round(Math.sqrt(map?.length ?? 0)), Math.round(Math.sqrt(map?.length ?? 0))];
  return { top: topK(logits, meta.labels, TOP), ...(map ? { attention: { grid, values: normalise(map) } } : {}) };
}

async function classify(file) {
  const where = toggle.checked ? 'browser' : 'server';
  setStatus(where === 'browser' ? 'Classifying in this browser…' : 'Classifying on the server…', 'busy');
  const t0 = performance.now();
  try {
    const result = where === 'browser' ? await classifyInBrowser(file) : await classifyOnServer(file);
    if (file !== current) return;
    attention = result.attention;
    await drawAttention();
    render(result.top, where, performance.now() - t0);
  } catch (e) {
    results.replaceChildren();
    attention = undefined;
    overlay.hidden = true;
    setStatus(`Could not classify ${file.name || 'the image'}: ${e.message}`, 'error');
  }
}

function show(file) {
  if (!file) return;
  current = file;
  attention = undefined;
  overlay.hidden = true;
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = URL.createObjectURL(file);
  preview.src = previewUrl;
  preview.alt = `Selected image: ${file.name}`;
  preview.hidden = false;
  fileName.textContent = file.name;
  void classify(file);
}

fileInput.addEventListener('change', () => show(fileInput.files[0]));
for (const type of ['dragenter', 'dragover']) {
  dropZone.addEventListener(type, (e) => { e.preventDefault(); dropZone.classList.add('dragging'); });
}
for (const type of ['dragleave', 'drop']) dropZone.addEventListener(type, () => dropZone.classList.remove('dragging'));
dropZone.addEventListener('drop', (e) => {
  e.preventDefault();
  show(e.dataTransfer.files[0]);
});

showAttention.addEventListener('change', () => void drawAttention());
window.addEventListener('resize', () => void drawAttention());

toggle.addEventListener('change', async () => {
  if (toggle.checked) {
    setStatus('Loading onnxruntime-web and the model…', 'busy');
    try {
      const { bytes } = await loadBrowserModel();
      setStatus(`The model (${(bytes / 2 ** 20).toFixed(1)} MB) runs in this browser now.`, 'ready');
    } catch (e) {
      toggle.checked = false;
      setStatus(`In-browser mode is unavailable: ${e.message}`, 'error');
      return;
    }
  }
  if (current) void classify(current);
  else if (!toggle.checked) setStatus('Choose an image to classify it.', 'idle');
});

try {
  const response = await fetch('/v1/model');
  meta = await response.json();
  const [c, h, w] = meta.input_size;
  $('model-info').textContent = `${meta.model} · ${meta.labels.length} labels · ${c}×${h}×${w} input`
    + `${meta.quantization === 'none' ? '' : ` · ${meta.quantization}`}`;
  fileInput.disabled = false;
  showAttention.disabled = !meta.attention_map;
} catch (e) {
  $('model-info').textContent = `Could not load the model description: ${e.message}`;
}

/** For tests and the console: the exact tensor this page feeds the model for a file. */
window.tessera = { preprocessFile: async (file) => Array.from((await preprocessFile(file)).tensor), ready: Boolean(meta) };
