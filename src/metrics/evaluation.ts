/**
 * The metrics `tessera eval` (and the training report's final evaluation) adds to top-1: read off
 * the logits of every scored image, with the checkpoint's temperature applied to the
 * probabilities, and the calibration error before and after it.
 */
import { softmaxRows } from '../nn/host_math.js';
import { expectedCalibrationError, DEFAULT_CALIBRATION_BINS, type ReliabilityBin } from './calibration.js';
import { classificationReport, thresholdScores, type ClassScores } from './classification.js';
import { oneVsRest } from './ranking.js';
import { applyTemperature, temperatureNll } from './temperature.js';

export interface EvaluationMetricsOptions {
  /** The checkpoint's temperature (absent: probabilities are softmax(logits)). */
  temperature?: number;
  /** Binary tasks: sensitivity/specificity with the positive class predicted at p ≥ threshold (default 0.5). */
  threshold?: number;
  /** Binary tasks: index of the positive class (default 1). */
  positiveClass?: number;
  /** Equal-width confidence bins of the ECE (default 15). */
  calibrationBins?: number;
}

export interface CurvePoints { x: number[]; y: number[] }

export interface EvaluationMetrics {
  perClass: (ClassScores & { name: string; rocAuc: number | null; averagePrecision: number | null })[];
  macro: { precision: number; recall: number; f1: number; rocAuc: number | null; averagePrecision: number | null };
  weighted: { precision: number; recall: number; f1: number };
  balancedAccuracy: number;
  calibration: {
    bins: number;
    binning: string;
    /** Absent when the checkpoint has no temperature. */
    temperature?: number;
    eceBefore?: number;
    ece: number;
    /** Mean negative log-likelihood of the probabilities (with the temperature). */
    nll: number;
    reliability: ReliabilityBin[];
  };
  binary?: { positiveClass: string; positiveIndex: number; threshold: number; sensitivity: number; specificity: number; tp: number; fn: number; tn: number; fp: number };
  /** Per class, one-vs-rest: ROC (x = FPR, y = TPR) and PR (x = recall, y = precision) points, for the charts. */
  curves: { roc: CurvePoints; pr: CurvePoints }[];
}

/** NaN (a class absent from the images, or present in all) becomes null, so JSON keeps it. */
const finiteOrNull = (v: number) => (Number.isFinite(v) ? v : null);

export function evaluationMetrics(logits: Float32Array, labels: ArrayLike<number>, classNames: readonly string[], opts: EvaluationMetricsOptions = {}): EvaluationMetrics {
  const c = classNames.length;
  if (logits.length !== labels.length * c) throw new RangeError(`evaluationMetrics: ${logits.length} logits do not make ${labels.length} rows of ${c} classes`);
  const bins = opts.calibrationBins ?? DEFAULT_CALIBRATION_BINS;
  const probs = softmaxRows(applyTemperature(logits, opts.temperature), c);
  const confusion = Array.from({ length: c }, () => new Array<number>(c).fill(0));
  for (let i = 0; i < labels.length; i++) {
    let pred = 0;
    for (let k = 1; k < c; k++) if (probs[i * c + k]! > probs[i * c + pred]!) pred = k;
    confusion[labels[i]!]![pred]!++;
  }
  const report = classificationReport(confusion);
  const ranking = oneVsRest(probs, labels, c);
  const calibrated = expectedCalibrationError(probs, labels, c, bins);
  const scaled = opts.temperature !== undefined && opts.temperature !== 1;
  const aucs = ranking.map((r) => r.rocAuc).filter(Number.isFinite);
  const aps = ranking.map((r) => r.averagePrecision).filter(Number.isFinite);
  const mean = (v: number[]) => (v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN);
  const out: EvaluationMetrics = {
    perClass: report.perClass.map((s, k) => ({ name: classNames[k]!, ...s, rocAuc: finiteOrNull(ranking[k]!.rocAuc), averagePrecision: finiteOrNull(ranking[k]!.averagePrecision) })),
    // a binary task's ROC-AUC is the positive class's (the negative's is the same number)
    macro: { ...report.macro, rocAuc: finiteOrNull(c === 2 ? ranking[opts.positiveClass ?? 1]!.rocAuc : mean(aucs)), averagePrecision: finiteOrNull(mean(aps)) },
    weighted: report.weighted,
    balancedAccuracy: report.balancedAccuracy,
    calibration: {
      bins,
      binning: `${bins} equal-width bins of the top-class probability over [0, 1], each (lower, upper] (the first includes 0)`,
      ...(scaled ? { temperature: opts.temperature, eceBefore: expectedCalibrationError(softmaxRows(logits, c), labels, c, bins).ece } : {}),
      ece: calibrated.ece,
      nll: temperatureNll(logits, labels, c, opts.temperature ?? 1),
      reliability: calibrated.reliability,
    },
    curves: ranking.map((r) => ({ roc: { x: r.fpr, y: r.tpr }, pr: { x: r.recall, y: r.precision } })),
  };
  if (c === 2) {
    const positive = opts.positiveClass ?? 1;
    const t = thresholdScores(probs, labels, c, positive, opts.threshold ?? 0.5);
    out.binary = { positiveClass: classNames[positive]!, positiveIndex: positive, threshold: t.threshold, sensitivity: t.sensitivity, specificity: t.specificity, tp: t.tp, fn: t.fn, tn: t.tn, fp: t.fp };
  }
  return out;
}
