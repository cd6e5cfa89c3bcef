/**
 * Training progress: a live bar (epoch, step, loss, img/s, the run's ETA) on a terminal; plain log
 * lines, about ten per epoch, when stdout is not a TTY (CI logs, pipes). The bar fills per epoch,
 * the ETA is for the whole run: it says "run ETA" so that the two are not read as one.
 */
import cliProgress from 'cli-progress';
import type { StepInfo } from '../train/trainer.js';

/** A rate with two significant digits below 10 (a 4,096-token model trains at 0.49 img/s, not "0"). */
export function formatRate(perSecond: number): string {
  return perSecond >= 10 ? perSecond.toFixed(0) : perSecond.toPrecision(2);
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}h${String(m).padStart(2, '0')}m` : m ? `${m}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

export interface ProgressReporter {
  step(s: StepInfo): void;
  /** Ends the current epoch's bar before other output. */
  pause(): void;
  stop(): void;
}

export function createProgress(stream: NodeJS.WriteStream = process.stderr): ProgressReporter {
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar({
      stream,
      format: 'epoch {epoch}/{epochs} |{bar}| {value}/{total} loss {loss} lr {lr} {rate} img/s run ETA {eta_run}',
      barCompleteChar: '█',
      barIncompleteChar: '░',
      hideCursor: true,
      clearOnComplete: false,
    });
    let active = false;
    let epoch = 0;
    return {
      step(s) {
        const payload = { epoch: s.epoch, epochs: s.epochs, loss: s.loss.toFixed(4), lr: s.lr.toExponential(2), rate: formatRate(s.imagesPerSecond), eta_run: formatDuration(s.etaSeconds) };
        if (!active || epoch !== s.epoch) {
          if (active) bar.stop();
          bar.start(s.batches, s.batch, payload);
          active = true;
          epoch = s.epoch;
        } else bar.update(s.batch, payload);
      },
      pause() { if (active) { bar.stop(); active = false; } },
      stop() { if (active) { bar.stop(); active = false; } },
    };
  }
  let lastTenth = -1;
  return {
    step(s) {
      const tenth = Math.floor((s.batch / s.batches) * 10);
      if (tenth === lastTenth && s.batch !== s.batches) return;
      lastTenth = s.batch === s.batches ? -1 : tenth;
      stream.write(`epoch ${s.epoch}/${s.epochs} step ${s.batch}/${s.batches} loss ${s.loss.toFixed(4)} lr ${s.lr.toExponential(2)} ${formatRate(s.imagesPerSecond)} img/s run ETA ${formatDuration(s.etaSeconds)}\n`);
    },
    pause() {},
    stop() {},
  };
}
