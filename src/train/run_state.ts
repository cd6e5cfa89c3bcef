/**
 * What a run keeps on disk between steps, in one place: the weights (last/best checkpoints),
 * the resumable state (optimiser moments, EMA weights, the objective's state, the position in
 * the data) and the metrics. Each save is one commit of the run directory (run_dir.ts), so its
 * files become visible together; `resume` reads back exactly what the last commit wrote.
 */
import { linkOrCopy } from '../checkpoint/atomic.js';
import { loadCheckpoint, saveCheckpoint, type CheckpointMeta } from '../checkpoint/checkpoint.js';
import type { ImageModel } from '../models/model.js';
import type { Optimizer } from '../optim/adamw.js';
import type { ModelEma } from './ema.js';
import type { Objective } from './objectives/objective.js';
import { commitRun, loadState, readMetrics, saveState, writeMetrics, type CommitRecord, type EpochRecord, type Position, type RunFiles } from './run_dir.js';

export class RunCheckpointer {
  constructor(readonly files: RunFiles, private readonly model: ImageModel, private readonly meta: CheckpointMeta,
    private readonly optimizer: Optimizer, private readonly objective: Objective, private readonly ema?: ModelEma) {}

  /** Loads the saved optimiser, EMA and objective state; returns the position and the metrics so far. */
  resume(): { pos: Position; metrics: EpochRecord[] } {
    const st = loadState(this.files);
    const pos = st.pos;
    this.optimizer.loadStateTensors(st.tensors);
    this.optimizer.stepCount = pos.optimizerStep;
    if (this.ema) for (const [k, e] of this.ema.weights) e.set(st.tensors[`ema.${k}`] ?? fail(`state has no EMA weights for ${k}`));
    if (this.objective.loadStateTensors) {
      const prefix = 'objective.';
      this.objective.loadStateTensors(Object.fromEntries(Object.entries(st.tensors).filter(([k]) => k.startsWith(prefix)).map(([k, t]) => [k.slice(prefix.length), t])));
    }
    return { pos, metrics: readMetrics(this.files).filter((r) => r.epoch <= pos.epoch) };
  }

  /** After an interrupt: the weights and the resumable state at `pos`; best and the metrics stay as committed. */
  saveResumable(pos: Position): CommitRecord {
    return commitRun(this.files, pos, (stage) => {
      saveCheckpoint(stage.last, this.model, { ...this.meta, epoch: pos.epoch });
      this.saveStateTo(stage, pos);
    }, ['best.safetensors', 'metrics.jsonl']);
  }

  /** An epoch's end: last, best when it improved (else the committed one), state and the metrics, as one commit. */
  commitEpoch(pos: Position, metrics: EpochRecord[], epochMeta: CheckpointMeta, improved: boolean): CommitRecord {
    return commitRun(this.files, pos, (stage) => {
      saveCheckpoint(stage.last, this.model, epochMeta);
      // the same bytes as last: a second name for them
      if (improved) linkOrCopy(stage.last, stage.best);
      this.saveStateTo(stage, pos);
      writeMetrics(stage, metrics);
    }, improved ? [] : ['best.safetensors']);
  }

  private saveStateTo(stage: RunFiles, pos: Position): void {
    const tensors: Record<string, Float32Array> = { ...this.optimizer.stateTensors() };
    if (this.ema) for (const [k, e] of this.ema.weights) tensors[`ema.${k}`] = e;
    for (const [k, t] of Object.entries(this.objective.stateTensors?.() ?? {})) tensors[`objective.${k}`] = t;
    saveState(stage, pos, tensors);
  }
}

/** The model of a run directory's last checkpoint (to resume it). */
export function loadRunModel(files: RunFiles): ImageModel {
  return loadCheckpoint(files.last).model;
}

const fail = (msg: string): never => { throw new Error(msg); };
