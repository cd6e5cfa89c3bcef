/**
 * Maps of what token reduction did to an image (issue #21): which patches DynamicViT kept, and
 * which patches token merging (ToMe) merged together. These models have no attention over a
 * patch grid after their first reduction, so the attention methods do not apply; this shows the
 * reduction itself, on the patch grid.
 *
 * - DynamicViT (dynamic_keep < 1): each patch's value is the share of the pruning stages it
 *   survived, 1 for the patches the last blocks still see, 0 for those dropped at the first
 *   stage. The tiles show each stage's kept patches (1) against the dropped ones (0).
 * - ToMe (tome_r > 0): each patch's value is the number of patches in the token it ended in
 *   (1: never merged; large: one of many similar patches averaged into one token). The second
 *   tile colours the final tokens apart (patches of one token share a value), as the ToMe paper
 *   draws its merges.
 * Both come from the inference graph the model runs (top-k choice, merge source map), one probe.
 */
import type { ImageModel, TokenReduction } from '../models/model.js';
import { compileTraced, trace, type Executable } from '../runtime/compile.js';
import type { SessionOptions } from '../runtime/session.js';

export interface ReductionMap {
  kind: 'dynamicvit' | 'tome';
  /** [gh · gw] per patch, row-major over the patch grid. */
  map: Float32Array;
  tiles: { label: string; map: Float32Array }[];
}

export interface TokenReductionProbe {
  readonly reduction: TokenReduction;
  readonly numClasses: number;
  readonly exe: Executable;
}

/** The model's token reduction, or one line saying that it has none. */
export function tokenReductionOf(model: ImageModel, name = `the ${model.family} model`): TokenReduction {
  const reduction = model.tokenReduction();
  if (reduction) return reduction;
  throw new RangeError(`${name} reduces no tokens: the tokens method shows DynamicViT's kept patches or ToMe's merges, for a ViT/DeiT with dynamic_keep < 1 or tome_r > 0 (e.g. --model-kwargs tome_r=8)`);
}

/** Compiles the probe: logits, and each pruning stage's choice (DynamicViT) or the final source map (ToMe). */
export async function compileTokenReductionProbe(model: ImageModel, session: SessionOptions = {}, name?: string): Promise<TokenReductionProbe> {
  const reduction = tokenReductionOf(model, name);
  const [c, h, w] = model.inputShape;
  const traced = trace((x) => reduction.trace(x), [{ name: 'x', shape: ['batch', c, h, w] }]);
  const exe = await compileTraced(traced, { ...session, params: 'initializers' });
  return { reduction, numClasses: model.numClasses, exe };
}

/** Runs the probe on normalised images [B, C, H, W]: logits [B, classes] and one map per image. */
export async function runTokenReductionProbe(probe: TokenReductionProbe, x: Float32Array): Promise<{ logits: Float32Array; maps: ReductionMap[] }> {
  const out = await probe.exe.run({ x });
  const logits = out.logits!.data as Float32Array;
  const { kind, grid, prefix, pruneBlocks } = probe.reduction;
  const batch = logits.length / probe.numClasses;
  const patches = grid[0] * grid[1];
  const maps = Array.from({ length: batch }, (_, b) => {
    if (kind === 'dynamicvit') {
      const stages = pruneBlocks.length;
      const chosen = Object.keys(out).filter((k) => k.startsWith('selected/')).sort((a, b) => Number(a.split('/')[1]) - Number(b.split('/')[1]))
        .map((k) => ({ data: out[k]!.data as BigInt64Array, count: out[k]!.shape[1] as number }));
      return keptPatchMap(patches, stages, chosen.map(({ data, count }) => Array.from(data.subarray(b * count, (b + 1) * count), Number)), pruneBlocks);
    }
    const src = out.source!;
    const [, t, t0] = src.shape as [number, number, number];
    return mergedPatchMap(patches, prefix, (src.data as Float32Array).subarray(b * t * t0, (b + 1) * t * t0), t, t0);
  });
  return { logits, maps };
}

/**
 * DynamicViT's map from each stage's choice (indices into the tokens that entered the stage). A
 * stage that kept every token records no choice; those are the first ones (the counts only fall).
 */
export function keptPatchMap(patches: number, stages: number, chosen: readonly (readonly number[])[], blocks: readonly number[]): ReductionMap {
  const skipped = stages - chosen.length;
  let alive = Array.from({ length: patches }, (_, i) => i); // original patch of each live token
  const survived = new Float32Array(patches).fill(skipped);
  const tiles: ReductionMap['tiles'] = [];
  for (let s = 0; s < stages; s++) {
    if (s >= skipped) {
      alive = chosen[s - skipped]!.map((j) => {
        const p = alive[j];
        if (p === undefined) throw new RangeError(`DynamicViT stage ${s}: index ${j} is outside the ${alive.length} tokens that entered it`);
        return p;
      });
      for (const p of alive) survived[p]!++;
    }
    const kept = new Float32Array(patches);
    for (const p of alive) kept[p] = 1;
    tiles.push({ label: `block ${blocks[s]}: ${alive.length} kept`, map: kept });
  }
  return { kind: 'dynamicvit', map: survived.map((v) => v / stages), tiles };
}

/** ToMe's map from the final source map [T, T₀] (row t: which of the T₀ initial tokens token t holds). */
export function mergedPatchMap(patches: number, prefix: number, source: Float32Array, tokens: number, initial: number): ReductionMap {
  if (initial !== prefix + patches) throw new RangeError(`ToMe source map: ${initial} initial tokens, expected ${prefix} prefix + ${patches} patches`);
  const size = new Float32Array(patches);
  const group = new Float32Array(patches).fill(-1);
  for (let t = 0; t < tokens; t++) {
    const row = source.subarray(t * initial, (t + 1) * initial);
    let n = 0;
    for (let p = 0; p < patches; p++) if (row[prefix + p]! > 0.5) n++;
    for (let p = 0; p < patches; p++) {
      if (row[prefix + p]! <= 0.5) continue;
      if (group[p]! >= 0) throw new RangeError(`ToMe source map: patch ${p} is in two tokens`);
      size[p] = n;
      group[p] = t;
    }
  }
  const lost = group.findIndex((g) => g < 0);
  if (lost >= 0) throw new RangeError(`ToMe source map: patch ${lost} is in no token`);
  // tokens numbered in reading order of their first patch, then spread by the golden ratio so neighbours differ in colour
  const order = new Map<number, number>();
  for (const g of group) if (!order.has(g)) order.set(g, order.size);
  const colours = group.map((g) => (order.get(g)! * 0.618034) % 1);
  return {
    kind: 'tome', map: size,
    tiles: [{ label: 'patches per token', map: size }, { label: `${order.size} tokens`, map: colours }],
  };
}
