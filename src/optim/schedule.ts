/**
 * Per-step learning-rate schedules as pure functions `lr(step)`, with timm's semantics
 * (CosineLRScheduler / StepLRScheduler with t_in_epochs=False): a linear warmup from
 * `warmupLr`, then the decay.
 */

export interface ScheduleConfig {
  kind: 'cosine' | 'step' | 'constant';
  baseLr: number;
  totalSteps: number;
  warmupSteps: number;
  warmupLr: number;
  /** cosine: the floor. */
  minLr: number;
  /** step: decay every `decaySteps` after warmup, by `decayRate`. */
  decaySteps: number;
  decayRate: number;
}

export type Schedule = (step: number) => number;

export function makeSchedule(c: ScheduleConfig): Schedule {
  const decay = {
    // half a cosine period from baseLr down to minLr over the steps after warmup
    cosine: (t: number) => {
      const span = Math.max(1, c.totalSteps - c.warmupSteps);
      return c.minLr + 0.5 * (c.baseLr - c.minLr) * (1 + Math.cos((Math.PI * Math.min(t, span)) / span));
    },
    step: (t: number) => c.baseLr * c.decayRate ** Math.floor(t / c.decaySteps),
    constant: () => c.baseLr,
  }[c.kind];
  return (step) => (step < c.warmupSteps
    ? c.warmupLr + (step * (c.baseLr - c.warmupLr)) / c.warmupSteps
    : decay(step - c.warmupSteps));
}
