/**
 * Calibration: expected calibration error (Guo et al. 2017) over equal-width confidence bins
 * (e_i, e_i+1] of [0, 1], the first closed, as scikit-learn's calibration_curve assigns them.
 * ECE = Σ_b |B_b|/N · |accuracy(B_b) − mean confidence(B_b)|, confidence = the top probability.
 */
export interface ReliabilityBin { lower: number; upper: number; count: number; accuracy: number | null; confidence: number | null }

export const DEFAULT_CALIBRATION_BINS = 15;

export function expectedCalibrationError(probs: ArrayLike<number>, labels: ArrayLike<number>, classes: number, bins = DEFAULT_CALIBRATION_BINS) {
  if (!(Number.isInteger(bins) && bins >= 1)) throw new RangeError(`calibration bins must be a positive integer, got ${bins}`);
  const edges = Array.from({ length: bins + 1 }, (_, i) => i / bins);
  const count = new Array<number>(bins).fill(0), correct = new Array<number>(bins).fill(0), conf = new Array<number>(bins).fill(0);
  for (let i = 0; i < labels.length; i++) {
    let pred = 0;
    for (let k = 1; k < classes; k++) if (probs[i * classes + k]! > probs[i * classes + pred]!) pred = k;
    const p = probs[i * classes + pred]!;
    let b = Math.min(bins - 1, Math.max(0, Math.ceil(p * bins) - 1));
    while (b > 0 && p <= edges[b]!) b--;
    while (b < bins - 1 && p > edges[b + 1]!) b++;
    count[b]!++;
    conf[b]! += p;
    if (pred === labels[i]) correct[b]!++;
  }
  let ece = 0;
  const reliability: ReliabilityBin[] = count.map((n, b) => {
    if (!n) return { lower: edges[b]!, upper: edges[b + 1]!, count: 0, accuracy: null, confidence: null };
    ece += (n / labels.length) * Math.abs(correct[b]! / n - conf[b]! / n);
    return { lower: edges[b]!, upper: edges[b + 1]!, count: n, accuracy: correct[b]! / n, confidence: conf[b]! / n };
  });
  return { bins, ece, reliability };
}
