/**
 * One-vs-rest ranking metrics of a class's scores: the ROC curve and its area (trapezoids between
 * the points of distinct thresholds, so tied scores count half, as scikit-learn's roc_auc_score),
 * and the precision-recall curve with average precision AP = Σ (R_n − R_{n−1}) P_n over distinct
 * thresholds (scikit-learn's average_precision_score; no interpolation).
 */
export interface RankingCurves {
  /** ROC points from (0, 0) up, one per distinct threshold (scikit-learn's drop_intermediate=False). */
  fpr: number[];
  tpr: number[];
  /** PR points in scikit-learn's order: recall decreasing to the final (recall 0, precision 1). */
  precision: number[];
  recall: number[];
  thresholds: number[];
  rocAuc: number;
  averagePrecision: number;
}

/** Curves of `scores` against the 0/1 `positive` flags; NaN areas when one side has no samples. */
export function rankingCurves(scores: ArrayLike<number>, positive: ArrayLike<boolean>): RankingCurves {
  const order = Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[b]! - scores[a]!);
  let p = 0, n = 0;
  for (let i = 0; i < positive.length; i++) positive[i] ? p++ : n++;
  const fpr = [0], tpr = [0], thresholds: number[] = [], prec: number[] = [], rec: number[] = [];
  let tp = 0, fp = 0, auc = 0, ap = 0, lastRecall = 0;
  for (let i = 0; i < order.length; i++) {
    const j = order[i]!;
    positive[j] ? tp++ : fp++;
    // a point only after the last of a run of tied scores
    if (i + 1 < order.length && scores[order[i + 1]!] === scores[j]) continue;
    const x = n ? fp / n : NaN, y = p ? tp / p : NaN;
    auc += ((x - fpr.at(-1)!) * (y + tpr.at(-1)!)) / 2;
    fpr.push(x);
    tpr.push(y);
    thresholds.push(scores[j]!);
    const precision = tp / (tp + fp), recall = p ? tp / p : NaN;
    ap += (recall - lastRecall) * precision;
    lastRecall = recall;
    prec.push(precision);
    rec.push(recall);
  }
  // scikit-learn ≥ 1.1 keeps every threshold's point and appends (recall 0, precision 1)
  const precision = [...prec.reverse(), 1], recall = [...rec.reverse(), 0];
  return { fpr, tpr, precision, recall, thresholds, rocAuc: n && p ? auc : NaN, averagePrecision: p ? ap : NaN };
}

/** Per class: its column of `probs` [N, C] against the images of that class. */
export function oneVsRest(probs: ArrayLike<number>, labels: ArrayLike<number>, classes: number): RankingCurves[] {
  return Array.from({ length: classes }, (_, k) => {
    const scores = new Float64Array(labels.length);
    const positive = Array.from({ length: labels.length }, (_, i) => labels[i] === k);
    for (let i = 0; i < labels.length; i++) scores[i] = probs[i * classes + k]!;
    return rankingCurves(scores, positive);
  });
}
