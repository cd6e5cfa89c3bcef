/**
 * Explaining a model's predictions: raw attention, attention rollout, gradient-weighted rollout
 * (Chefer et al. 2021) and input-gradient saliency with optional SmoothGrad (Smilkov et al. 2017,
 * https://arxiv.org/abs/1706.03825). The graph supplies attentions and gradients (probe.ts); the
 * maps are host math (rollout.ts). Saliency works for any model; the attention methods need the
 * model's token grid (`ImageModel.tokenGrid()`).
 *
 * Which token explains the prediction: the class token's row for class-token pooling (DeiT
 * included: its distillation token is a prefix token and never part of the map), the mean of the
 * patch tokens' rows for patch-mean pooling (the head sees the mean of the patch tokens).
 *
 * `tokens` is for token-reducing ViTs (DynamicViT, ToMe), which have no attention over a patch
 * grid: it maps which patches were kept or merged (token_reduction.ts).
 */
import type { ImageModel, TokenGrid } from '../models/model.js';
import { Random, mixSeed } from '../random.js';
import type { SessionOptions } from '../runtime/session.js';
import { argmaxRow, resizeBilinear } from './maps.js';
import { compileProbe, requireTokenGrid, runProbe, type Probe, type ProbeResult } from './probe.js';
import { compileTokenReductionProbe, runTokenReductionProbe, type TokenReductionProbe } from './token_reduction.js';
import { attentionRollout, fuseHeads, gradientRollout, patchRow, sampleOf, type MapSource, type RolloutOptions } from './rollout.js';

export const explainMethods = ['attention', 'rollout', 'grad-rollout', 'saliency', 'tokens'] as const;
export type ExplainMethod = (typeof explainMethods)[number];

export interface SmoothGradOptions {
  /** Noisy copies averaged per image. */
  samples: number;
  /** Noise σ as a fraction of the image's value range (max − min); default 0.15 (Smilkov et al.: 10–20%). */
  noiseLevel?: number;
  /** Seed of the noise (default 0); image b draws from its own stream. */
  seed?: number;
}

export interface ExplainOptions extends RolloutOptions {
  method: ExplainMethod;
  /** The class explained per image; undefined (or a missing entry) means the predicted class. */
  classes?: readonly (number | undefined)[];
  /** Saliency only: average |gradient| over noisy copies. */
  smoothGrad?: SmoothGradOptions;
}

/** One map of a grid (a layer, a head, a channel). */
export interface MapTile { label: string; map: Float32Array }

export interface Explanation {
  method: ExplainMethod;
  /** The class whose evidence the map shows (attention and rollout are class-agnostic: the prediction). */
  classIndex: number;
  predicted: number;
  logits: Float32Array;
  /** [h, w]: the patch grid, or the input image for saliency. Raw values, not rescaled. */
  map: Float32Array;
  mapShape: [number, number];
  /** The map resized (bilinear) to the model's input size [H, W]. */
  upsampled: Float32Array;
  /** Per-layer / per-head / per-channel maps, each of mapShape, in reading order. */
  tiles: MapTile[];
  /** Columns to lay the tiles out in. */
  tileColumns: number;
}

/**
 * Compiles the executables a method needs once and reuses them across calls. The weights are
 * baked into each executable when a method is first used: make a new Explainer after changing them.
 */
export class Explainer {
  private readonly probes = new Map<string, Promise<Probe>>();
  private tokenProbe?: Promise<TokenReductionProbe>;

  /** `name` is the model as errors name it (e.g. the checkpoint's model name). */
  constructor(readonly model: ImageModel, readonly session: SessionOptions = {}, readonly name = `the ${model.family} model`) {}

  /** The row of the attention maps that explains the prediction (attention methods only). */
  get source(): MapSource {
    return this.grid('attention maps').pool;
  }

  private grid(what: string, hint?: string): TokenGrid {
    return requireTokenGrid(this.model, what, { name: this.name, hint });
  }

  /** Explains normalised images x [B, C, H, W] (the model's input). */
  async explain(x: Float32Array, opts: ExplainOptions): Promise<Explanation[]> {
    const [c, h, w] = this.model.inputShape;
    const batch = x.length / (c * h * w);
    if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`explain: ${x.length} values are no whole batch of ${c}×${h}×${w} images`);
    const classes = opts.classes ?? [];
    const numClasses = this.model.numClasses;
    for (const k of classes) {
      if (k !== undefined && !(Number.isInteger(k) && k >= 0 && k < numClasses)) throw new RangeError(`explain: class ${k} is not in 0…${numClasses - 1}`);
    }
    if (opts.smoothGrad && opts.method !== 'saliency') throw new RangeError(`explain: SmoothGrad applies to saliency, not ${opts.method}`);
    if (opts.method !== 'saliency' && opts.method !== 'tokens') {
      this.grid(`the ${opts.method} method`, this.model.tokenReduction() ? 'saliency works for any model, and this one shows its kept or merged tokens with the tokens method' : 'saliency works for any model');
    }
    switch (opts.method) {
      case 'attention':
      case 'rollout': {
        const probe = await this.probe([]);
        const out = await runProbe(probe, x);
        return Array.from({ length: batch }, (_, b) => {
          const predicted = argmaxRow(out.logits, b, numClasses);
          return this.finish(opts.method, b, out, classes[b] ?? predicted, predicted,
            opts.method === 'attention' ? this.attentionTiles(probe, out, b, opts) : this.rolloutTiles(probe, out, b, opts));
        });
      }
      case 'grad-rollout': {
        const probe = await this.probe(['attention']);
        const { out, targets } = await this.runForClasses(probe, x, batch, classes);
        return targets.map((k, b) => this.finish('grad-rollout', b, out, k, argmaxRow(out.logits, b, numClasses), this.gradRolloutTiles(probe, out, b)));
      }
      case 'saliency':
        return this.saliency(x, batch, classes, opts.smoothGrad);
      case 'tokens':
        return this.tokens(x, batch, classes);
    }
  }

  async dispose(): Promise<void> {
    const probes = await Promise.all(this.probes.values());
    this.probes.clear();
    await Promise.all(probes.map((p) => p.exe.dispose()));
    // a probe that failed to compile (a model that reduces no tokens) has nothing to dispose
    const tokenProbe = await this.tokenProbe?.catch(() => undefined);
    this.tokenProbe = undefined;
    await tokenProbe?.exe.dispose();
  }

  private probe(gradients: ('attention' | 'input')[]): Promise<Probe> {
    const key = gradients.join();
    let p = this.probes.get(key);
    if (!p) this.probes.set(key, (p = compileProbe(this.model, { gradients, session: this.session })));
    return p;
  }

  /** Runs a gradient probe for the given classes; where a class is missing, first finds the prediction. */
  private async runForClasses(probe: Probe, x: Float32Array, batch: number, classes: readonly (number | undefined)[]) {
    let targets = Array.from({ length: batch }, (_, b) => classes[b]);
    let out: ProbeResult | undefined;
    if (targets.some((k) => k === undefined)) {
      const first = await runProbe(probe, x, targets.map((k) => k ?? 0));
      targets = targets.map((k, b) => k ?? argmaxRow(first.logits, b, probe.classes));
      if (targets.every((k, b) => k === (classes[b] ?? 0))) out = first;
    }
    out ??= await runProbe(probe, x, targets as number[]);
    return { out, targets: targets as number[] };
  }

  private finish(method: ExplainMethod, b: number, out: ProbeResult, classIndex: number, predicted: number, grid: { map: Float32Array; tiles: MapTile[]; columns: number; shape?: [number, number] }): Explanation {
    const [, h, w] = this.model.inputShape;
    const shape = grid.shape ?? this.grid('attention maps').grid;
    const n = this.model.numClasses;
    return {
      method, classIndex, predicted, logits: out.logits.slice(b * n, (b + 1) * n), map: grid.map, mapShape: [shape[0], shape[1]],
      upsampled: resizeBilinear(grid.map, shape[0], shape[1], h, w), tiles: grid.tiles, tileColumns: grid.columns,
    };
  }

  /** Last block's source row per head and fused; the grid shows every block. */
  private attentionTiles(probe: Probe, out: ProbeResult, b: number, opts: RolloutOptions) {
    const { heads, tokens, prefix } = probe;
    const fusion = opts.headFusion ?? 'mean';
    const tt = tokens * tokens;
    const tiles: MapTile[] = [];
    let map: Float32Array = new Float32Array(0);
    out.attentions.forEach((layer, l) => {
      const a = sampleOf(layer, b, heads * tt);
      for (let hd = 0; hd < heads; hd++) tiles.push({ label: `block ${l} head ${hd}`, map: patchRow(a.subarray(hd * tt, (hd + 1) * tt), tokens, prefix, this.source) });
      map = patchRow(fuseHeads(a, heads, tokens, fusion), tokens, prefix, this.source);
      tiles.push({ label: `block ${l} ${fusion}`, map });
    });
    return { map, tiles, columns: heads + 1 };
  }

  /** The rollout through all blocks; the grid shows it after each block. */
  private rolloutTiles(probe: Probe, out: ProbeResult, b: number, opts: RolloutOptions) {
    const { heads, tokens, prefix } = probe;
    const layers = out.attentions.map((a) => sampleOf(a, b, heads * tokens * tokens));
    return this.cumulativeTiles(attentionRollout(layers, heads, tokens, opts), tokens, prefix);
  }

  private gradRolloutTiles(probe: Probe, out: ProbeResult, b: number) {
    const { heads, tokens, prefix } = probe;
    const per = heads * tokens * tokens;
    const r = gradientRollout(out.attentions.map((a) => sampleOf(a, b, per)), out.attentionGrads!.map((g) => sampleOf(g, b, per)), heads, tokens);
    return this.cumulativeTiles(r, tokens, prefix);
  }

  private cumulativeTiles(perLayer: Float32Array[], tokens: number, prefix: number) {
    const tiles = perLayer.map((r, l) => ({ label: l === 0 ? 'block 0' : `blocks 0–${l}`, map: patchRow(r, tokens, prefix, this.source) }));
    return { map: tiles[tiles.length - 1]!.map, tiles, columns: Math.min(tiles.length, 6) };
  }

  /** Kept (DynamicViT) or merged (ToMe) patches; like attention maps, the map is the same whichever class is asked for. */
  private async tokens(x: Float32Array, batch: number, classes: readonly (number | undefined)[]): Promise<Explanation[]> {
    this.tokenProbe ??= compileTokenReductionProbe(this.model, this.session, this.name);
    const probe = await this.tokenProbe;
    const { logits, maps } = await runTokenReductionProbe(probe, x);
    const n = this.model.numClasses;
    const out: ProbeResult = { logits, attentions: [] };
    return maps.map((m, b) => {
      const predicted = argmaxRow(logits, b, n);
      return this.finish('tokens', b, out, classes[b] ?? predicted, predicted, { map: m.map, tiles: m.tiles, columns: m.tiles.length, shape: probe.reduction.grid });
    });
  }

  /** |∂ logit_c / ∂ x| (x normalised, as the model sees it), max over channels; SmoothGrad averages |∂| over noisy copies. */
  private async saliency(x: Float32Array, batch: number, classes: readonly (number | undefined)[], smooth?: SmoothGradOptions): Promise<Explanation[]> {
    const [c, h, w] = this.model.inputShape;
    const per = c * h * w;
    const probe = await this.probe(['input']);
    const { out, targets } = await this.runForClasses(probe, x, batch, classes);
    const absGrad = new Float32Array(out.inputGrad!.length);
    if (!smooth) for (let i = 0; i < absGrad.length; i++) absGrad[i] = Math.abs(out.inputGrad![i]!);
    else {
      if (!(Number.isInteger(smooth.samples) && smooth.samples >= 1)) throw new RangeError(`SmoothGrad samples must be a positive integer, got ${smooth.samples}`);
      const level = smooth.noiseLevel ?? 0.15;
      if (!(level >= 0)) throw new RangeError(`SmoothGrad noise level must be ≥ 0, got ${level}`);
      const chunk = 16;
      for (let b = 0; b < batch; b++) {
        const img = x.subarray(b * per, (b + 1) * per);
        let lo = Infinity;
        let hi = -Infinity;
        for (const v of img) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
        const sigma = level * (hi - lo);
        const rng = new Random(mixSeed(smooth.seed ?? 0, b, 0x5a11));
        const acc = absGrad.subarray(b * per, (b + 1) * per);
        for (let done = 0; done < smooth.samples; done += chunk) {
          const n = Math.min(chunk, smooth.samples - done);
          const noisy = new Float32Array(n * per);
          for (let s = 0; s < n; s++) for (let i = 0; i < per; i++) noisy[s * per + i] = img[i]! + sigma * rng.normal();
          const g = (await runProbe(probe, noisy, new Array<number>(n).fill(targets[b]!))).inputGrad!;
          for (let s = 0; s < n; s++) for (let i = 0; i < per; i++) acc[i]! += Math.abs(g[s * per + i]!) / smooth.samples;
        }
      }
    }
    return targets.map((k, b) => {
      const g = absGrad.subarray(b * per, (b + 1) * per);
      const map = new Float32Array(h * w);
      for (let i = 0; i < h * w; i++) {
        let m = 0;
        for (let ch = 0; ch < c; ch++) m = Math.max(m, g[ch * h * w + i]!);
        map[i] = m;
      }
      const tiles = c === 1 ? [{ label: 'input gradient', map }] : Array.from({ length: c }, (_, ch) => ({ label: `channel ${ch}`, map: g.slice(ch * h * w, (ch + 1) * h * w) }));
      return this.finish('saliency', b, out, k, argmaxRow(out.logits, b, probe.classes), { map, tiles, columns: tiles.length, shape: [h, w] });
    });
  }
}
