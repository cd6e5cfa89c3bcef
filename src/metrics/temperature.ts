/**
 * Temperature scaling (Guo et al. 2017): one scalar T > 0 dividing every logit, fitted on held-out
 * images by minimising the mean negative log-likelihood. The NLL is convex in β = 1/T (a
 * log-sum-exp of linear functions of β minus a linear term), so Newton's method on β with exact
 * first and second derivatives, safeguarded by bisection on a bracket, finds the optimum to
 * machine precision in a few dozen passes over the logits: no line-search tolerance to tune.
 */

export interface TemperatureFit {
  temperature: number;
  /** Mean NLL at T = 1 and at the fitted T. */
  nllBefore: number;
  nllAfter: number;
  iterations: number;
}

/** Mean NLL of logits [N, C] scaled by β, and its first two derivatives in β. */
function nllAndDerivatives(logits: ArrayLike<number>, labels: ArrayLike<number>, classes: number, beta: number) {
  let f = 0, g = 0, h = 0;
  const n = labels.length;
  for (let i = 0; i < n; i++) {
    const o = i * classes;
    let m = -Infinity;
    for (let k = 0; k < classes; k++) m = Math.max(m, beta * logits[o + k]!);
    let z = 0, ez = 0, ez2 = 0;
    for (let k = 0; k < classes; k++) {
      const v = logits[o + k]!, e = Math.exp(beta * v - m);
      z += e;
      ez += e * v;
      ez2 += e * v * v;
    }
    const mean = ez / z;
    f += m + Math.log(z) - beta * logits[o + labels[i]!]!;
    g += mean - logits[o + labels[i]!]!;
    h += ez2 / z - mean * mean;
  }
  return { f: f / n, g: g / n, h: h / n };
}

/** Mean NLL of logits [N, C] divided by `temperature`. */
export function temperatureNll(logits: ArrayLike<number>, labels: ArrayLike<number>, classes: number, temperature: number): number {
  return nllAndDerivatives(logits, labels, classes, 1 / temperature).f;
}

/** Bounds of T: outside them the optimum is a degenerate (near-)separable fit, and we clamp to them. */
export const TEMPERATURE_RANGE = [0.01, 100] as const;

export function fitTemperature(logits: ArrayLike<number>, labels: ArrayLike<number>, classes: number): TemperatureFit {
  if (!(classes >= 2)) throw new RangeError(`temperature scaling needs at least 2 classes, got ${classes}`);
  if (labels.length === 0) throw new RangeError('temperature scaling needs at least one labelled image, got none');
  if (logits.length !== labels.length * classes) throw new RangeError(`temperature scaling: ${logits.length} logits do not make ${labels.length} rows of ${classes} classes`);
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i]!;
    if (!(Number.isInteger(y) && y >= 0 && y < classes)) throw new RangeError(`temperature scaling: label ${y} of image ${i} is not a class index in [0, ${classes})`);
  }
  // β in [1/Tmax, 1/Tmin]; g(β) is non-decreasing (convexity), so its sign brackets the root
  let lo = 1 / TEMPERATURE_RANGE[1], hi = 1 / TEMPERATURE_RANGE[0];
  let beta = 1, iterations = 0;
  for (; iterations < 200; iterations++) {
    const { g, h } = nllAndDerivatives(logits, labels, classes, beta);
    if (g > 0) hi = beta;
    else lo = beta;
    if (Math.abs(g) < 1e-13 || hi - lo < 1e-15 * hi) break;
    let next = h > 0 ? beta - g / h : NaN;
    if (!(next > lo && next < hi)) next = (lo + hi) / 2;
    if (Math.abs(next - beta) < 1e-15 * beta) break;
    beta = next;
  }
  return {
    temperature: 1 / beta,
    nllBefore: nllAndDerivatives(logits, labels, classes, 1).f,
    nllAfter: nllAndDerivatives(logits, labels, classes, beta).f,
    iterations,
  };
}

/** Logits divided by T (a copy); T = 1 or undefined returns them unchanged. */
export function applyTemperature(logits: Float32Array, temperature: number | undefined): Float32Array {
  if (temperature === undefined || temperature === 1) return logits;
  return logits.map((v) => v / temperature);
}

/** A stored temperature must be a finite positive number. */
export function checkTemperature(t: unknown, source: string): number {
  if (typeof t !== 'number' || !Number.isFinite(t) || t <= 0) throw new RangeError(`${source}: temperature must be a finite positive number, got ${JSON.stringify(t)}`);
  return t;
}
