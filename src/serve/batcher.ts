/**
 * Dynamic batching: images from concurrent requests wait at most `maxWaitMs` to be run together,
 * up to `maxBatch` per model run. One batch runs at a time (ORT already uses every core for
 * one run); whatever arrives meanwhile forms the next batch. With `maxBatch` 1 every image runs
 * alone, which is batch-1 serving.
 *
 * A batch waits only for images known to be coming: requests announce their images with
 * `expect()` before decoding them. When nothing is announced the queue runs at once, so a lone
 * request pays no batching delay (measured: waiting the full window cut single-client
 * throughput to a quarter).
 */

export interface BatcherOptions {
  maxBatch: number;
  maxWaitMs: number;
  /** Floats per image in the model's input. */
  itemSize: number;
  /** Floats per image in the model's output. */
  outputSize: number;
  /** Runs the model on `count` images laid out back to back. */
  run(x: Float32Array, count: number): Promise<Float32Array>;
  /** Called after each model run. */
  onBatch?(count: number, seconds: number): void;
}

interface Pending {
  x: Float32Array;
  enqueued: number;
  resolve(out: Float32Array): void;
  reject(e: unknown): void;
}

export class DynamicBatcher {
  private queue: Pending[] = [];
  private running = false;
  private timer?: NodeJS.Timeout;
  private idleWaiters: (() => void)[] = [];
  /** images announced by expect() and not yet submitted or cancelled */
  private incoming = 0;

  constructor(private readonly o: BatcherOptions) {
    if (!(Number.isInteger(o.maxBatch) && o.maxBatch >= 1)) throw new RangeError(`maxBatch must be a positive integer, got ${o.maxBatch}`);
    if (!(o.maxWaitMs >= 0)) throw new RangeError(`maxWaitMs must be non-negative, got ${o.maxWaitMs}`);
  }

  /** Images waiting for a model run. */
  get queued(): number {
    return this.queue.length;
  }

  /** Images waiting or running. */
  get busy(): boolean {
    return this.running || this.queue.length > 0;
  }

  /** Classifies one image; resolves with its row of the output. */
  submit(x: Float32Array): Promise<Float32Array> {
    if (x.length !== this.o.itemSize) return Promise.reject(new RangeError(`expected ${this.o.itemSize} values per image, got ${x.length}`));
    return new Promise((resolve, reject) => {
      this.queue.push({ x, enqueued: performance.now(), resolve, reject });
      this.schedule();
    });
  }

  /**
   * Announces `count` images that are on their way (e.g. being decoded), so the current batch
   * waits for them (up to max-wait). Submit each through the returned handle; `cancel()`
   * withdraws the ones that will not come (a decode failed).
   */
  expect(count: number): { submit(x: Float32Array): Promise<Float32Array>; cancel(): void } {
    let left = count;
    this.incoming += count;
    return {
      submit: (x) => {
        if (left > 0) {
          left--;
          this.incoming--;
        }
        return this.submit(x);
      },
      cancel: () => {
        this.incoming -= left;
        left = 0;
        this.schedule();
      },
    };
  }

  /** Resolves once nothing is queued or running (used by graceful shutdown). */
  idle(): Promise<void> {
    return this.busy ? new Promise((r) => this.idleWaiters.push(r)) : Promise.resolve();
  }

  private schedule(): void {
    if (this.running || this.queue.length === 0) return;
    const waited = performance.now() - this.queue[0]!.enqueued;
    if (this.queue.length >= this.o.maxBatch || waited >= this.o.maxWaitMs || this.incoming === 0) {
      clearTimeout(this.timer);
      this.timer = undefined;
      void this.flush();
    } else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.schedule();
      }, this.o.maxWaitMs - waited);
    }
  }

  private async flush(): Promise<void> {
    const batch = this.queue.splice(0, this.o.maxBatch);
    this.running = true;
    const { itemSize, outputSize } = this.o;
    const x = new Float32Array(batch.length * itemSize);
    batch.forEach((p, i) => x.set(p.x, i * itemSize));
    const t0 = performance.now();
    try {
      const out = await this.o.run(x, batch.length);
      this.o.onBatch?.(batch.length, (performance.now() - t0) / 1000);
      batch.forEach((p, i) => p.resolve(out.slice(i * outputSize, (i + 1) * outputSize)));
    } catch (e) {
      batch.forEach((p) => p.reject(e));
    } finally {
      this.running = false;
      if (this.queue.length) this.schedule();
      else this.idleWaiters.splice(0).forEach((r) => r());
    }
  }
}
