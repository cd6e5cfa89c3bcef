/**
 * Per-class precision, recall, F1 and support, their macro and support-weighted averages, and
 * balanced accuracy, all read off a confusion matrix (confusion[true][pred]). A class with no
 * predictions (or no images) scores 0 there, as scikit-learn's zero_division=0 does.
 */
export interface ClassScores { precision: number; recall: number; f1: number; support: number }
export interface ClassificationReport {
  perClass: ClassScores[];
  macro: Omit<ClassScores, 'support'>;
  weighted: Omit<ClassScores, 'support'>;
  /** Mean recall over the classes that have images (scikit-learn's balanced_accuracy_score). */
  balancedAccuracy: number;
}

const ratio = (a: number, b: number) => (b > 0 ? a / b : 0);

export function classificationReport(confusion: readonly (readonly number[])[]): ClassificationReport {
  const c = confusion.length;
  const perClass = confusion.map((row, k) => {
    const tp = row[k]!;
    const support = row.reduce((a, b) => a + b, 0);
    let predicted = 0;
    for (let t = 0; t < c; t++) predicted += confusion[t]![k]!;
    const precision = ratio(tp, predicted), recall = ratio(tp, support);
    return { precision, recall, f1: ratio(2 * precision * recall, precision + recall), support };
  });
  const total = perClass.reduce((a, s) => a + s.support, 0);
  const average = (weight: (s: ClassScores) => number, norm: number) => ({
    precision: ratio(perClass.reduce((a, s) => a + weight(s) * s.precision, 0), norm),
    recall: ratio(perClass.reduce((a, s) => a + weight(s) * s.recall, 0), norm),
    f1: ratio(perClass.reduce((a, s) => a + weight(s) * s.f1, 0), norm),
  });
  const present = perClass.filter((s) => s.support > 0);
  return {
    perClass,
    macro: average(() => 1, c),
    weighted: average((s) => s.support, total),
    balancedAccuracy: ratio(present.reduce((a, s) => a + s.recall, 0), present.length),
  };
}

/** Sensitivity (recall of the positive class) and specificity when `positive` is predicted at probability ≥ threshold. */
export function thresholdScores(probs: ArrayLike<number>, labels: ArrayLike<number>, classes: number, positive: number, threshold: number) {
  let tp = 0, fn = 0, tn = 0, fp = 0;
  for (let i = 0; i < labels.length; i++) {
    const predictedPositive = probs[i * classes + positive]! >= threshold;
    if (labels[i] === positive) predictedPositive ? tp++ : fn++;
    else predictedPositive ? fp++ : tn++;
  }
  return { threshold, positive, sensitivity: ratio(tp, tp + fn), specificity: ratio(tn, tn + fp), tp, fn, tn, fp };
}
