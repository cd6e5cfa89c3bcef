// AssemblyScript (compiled by scripts/build_wasm.mjs into adamw_module.ts, with an imported
// memory: the moments live there for the optimiser's life; not part of the TypeScript build).
// AdamW's update in float32, 4 lanes at a time, in torch.optim.AdamW's single-tensor order:
//   p ← p·decay;  m ← m + c1·(g − m);  v ← v·β₂ + (c2·g)·g;  p ← p − stepSize · m / (√v / √bc2 + ε)

/** One tensor: parameter `p`, gradient `g`, moments `m`, `v` (byte addresses), `end` bytes, a whole number of lanes. */
export function adamw(p: usize, g: usize, m: usize, v: usize, end: usize,
  c1: f32, b2: f32, c2: f32, decay: f32, stepSize: f32, sqrtBc2: f32, eps: f32): void {
  const vc1 = f32x4.splat(c1), vb2 = f32x4.splat(b2), vc2 = f32x4.splat(c2), vdecay = f32x4.splat(decay);
  const vstep = f32x4.splat(stepSize), vbc2 = f32x4.splat(sqrtBc2), veps = f32x4.splat(eps);
  for (let i: usize = 0; i < end; i += 16) {
    const gi = v128.load(g + i);
    const mi = v128.load(m + i);
    const mn = f32x4.add(mi, f32x4.mul(vc1, f32x4.sub(gi, mi)));
    v128.store(m + i, mn);
    const vn = f32x4.add(f32x4.mul(v128.load(v + i), vb2), f32x4.mul(f32x4.mul(vc2, gi), gi));
    v128.store(v + i, vn);
    const denom = f32x4.add(f32x4.div(f32x4.sqrt(vn), vbc2), veps);
    v128.store(p + i, f32x4.sub(f32x4.mul(v128.load(p + i), vdecay), f32x4.mul(vstep, f32x4.div(mn, denom))));
  }
}
