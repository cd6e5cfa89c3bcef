/** The page: choose or drop an image, classify it on the server or in the browser, show the top 5 as bars. */
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
const TOP = 5;

let meta;
let current; // the File being shown
let previewUrl;

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

async function classifyOnServer(file) {
  const response = await fetch('/v1/predict', {
    method: 'POST',
    headers: { 'Content-Type': file.type || 'application/octet-stream' },
    body: file,
  });
  const body = await response.json();
  if (!response.ok) throw new Error(body.message ?? `HTTP ${response.status}`);
  return body.top;
}

async function classify(file) {
  const where = toggle.checked ? 'browser' : 'server';
  setStatus(where === 'browser' ? 'Classifying in this browser…' : 'Classifying on the server…', 'busy');
  const t0 = performance.now();
  try {
    const top = where === 'browser'
      ? topK(await runInBrowser(meta, await preprocessFile(file)), meta.labels, TOP)
      : await classifyOnServer(file);
    if (file === current) render(top, where, performance.now() - t0);
  } catch (e) {
    results.replaceChildren();
    setStatus(`Could not classify ${file.name || 'the image'}: ${e.message}`, 'error');
  }
}

function show(file) {
  if (!file) return;
  current = file;
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
} catch (e) {
  $('model-info').textContent = `Could not load the model description: ${e.message}`;
}

/** For tests and the console: the exact tensor this page feeds the model for a file. */
window.tessera = { preprocessFile: async (file) => Array.from((await preprocessFile(file)).tensor), ready: Boolean(meta) };
