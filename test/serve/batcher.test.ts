/** Dynamic batching and the Prometheus text format, without HTTP. */
import { describe, expect, it } from 'vitest';
import { DynamicBatcher, type BatcherOptions } from '../../src/serve/batcher.js';
import { Counter, Histogram } from '../../src/serve/metrics.js';

/** A fake model: output row i = [2·x_i0, batch size]; records every batch and the peak concurrency. */
function fakeModel(delayMs = 5) {
  const batches: number[] = [];
  let running = 0;
  let peak = 0;
  const run: BatcherOptions['run'] = async (x, count) => {
    batches.push(count);
    peak = Math.max(peak, ++running);
    await new Promise((r) => setTimeout(r, delayMs));
    running--;
    return Float32Array.from({ length: 2 * count }, (_, i) => (i % 2 === 0 ? 2 * x[(i / 2) * 3]! : count));
  };
  return { run, batches, peak: () => peak };
}

const item = (v: number) => Float32Array.of(v, 0, 0);

describe('DynamicBatcher', () => {
  it('runs announced images that arrive within max-wait as one batch, each getting its own row', async () => {
    const m = fakeModel();
    const b = new DynamicBatcher({ maxBatch: 32, maxWaitMs: 200, itemSize: 3, outputSize: 2, run: m.run });
    const coming = b.expect(5);
    const out = Promise.all([1, 2, 3, 4, 5].map(async (v) => {
      await new Promise((r) => setTimeout(r, 5 * v)); // decoded at different times
      return coming.submit(item(v));
    }));
    expect((await out).map((r) => Array.from(r))).toEqual([[2, 5], [4, 5], [6, 5], [8, 5], [10, 5]]);
    expect(m.batches).toEqual([5]);
  });

  it('does not wait when no other image is announced (a lone request pays no delay)', async () => {
    const m = fakeModel(1);
    const b = new DynamicBatcher({ maxBatch: 32, maxWaitMs: 60_000, itemSize: 3, outputSize: 2, run: m.run });
    const t0 = performance.now();
    await b.submit(item(1));
    const coming = b.expect(3);
    const first = coming.submit(item(2));
    coming.cancel(); // the other two failed to decode
    await first;
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(m.batches).toEqual([1, 1]);
  });

  it('waits at most max-wait for announced images', async () => {
    const m = fakeModel(1);
    const b = new DynamicBatcher({ maxBatch: 32, maxWaitMs: 40, itemSize: 3, outputSize: 2, run: m.run });
    const coming = b.expect(2);
    const t0 = performance.now();
    await coming.submit(item(1)); // the second never comes
    expect(performance.now() - t0).toBeGreaterThanOrEqual(35);
    expect(m.batches).toEqual([1]);
  });

  it('splits at max-batch, in arrival order, one run at a time', async () => {
    const m = fakeModel(15);
    const b = new DynamicBatcher({ maxBatch: 4, maxWaitMs: 1000, itemSize: 3, outputSize: 2, run: m.run });
    const coming = b.expect(10);
    const out = await Promise.all(Array.from({ length: 10 }, (_, i) => coming.submit(item(i))));
    expect(m.batches).toEqual([4, 4, 2]);
    expect(out.map((r) => r[0])).toEqual(Array.from({ length: 10 }, (_, i) => 2 * i));
    expect(m.peak()).toBe(1);
  });

  it('a full batch does not wait for max-wait', async () => {
    const m = fakeModel(1);
    const b = new DynamicBatcher({ maxBatch: 3, maxWaitMs: 60_000, itemSize: 3, outputSize: 2, run: m.run });
    const t0 = performance.now();
    const coming = b.expect(4);
    await Promise.all([1, 2, 3].map((v) => coming.submit(item(v))));
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(m.batches).toEqual([3]);
  });

  it('max-batch 1 runs every image alone', async () => {
    const m = fakeModel(1);
    const b = new DynamicBatcher({ maxBatch: 1, maxWaitMs: 50, itemSize: 3, outputSize: 2, run: m.run });
    const coming = b.expect(3);
    await Promise.all([1, 2, 3].map((v) => coming.submit(item(v))));
    expect(m.batches).toEqual([1, 1, 1]);
  });

  it('a failed run rejects its batch only; idle() waits for the queue to drain', async () => {
    let calls = 0;
    const b = new DynamicBatcher({
      maxBatch: 2, maxWaitMs: 20, itemSize: 3, outputSize: 2,
      run: async (_x, n) => { if (calls++ === 0) throw new Error('boom'); return new Float32Array(2 * n); },
    });
    const coming = b.expect(3);
    const results = await Promise.allSettled([1, 2, 3].map((v) => coming.submit(item(v))));
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'fulfilled']);
    expect(b.busy).toBe(false);
    const late = b.submit(item(4));
    expect(b.busy).toBe(true);
    await b.idle();
    await expect(late).resolves.toHaveLength(2);
    await expect(b.submit(Float32Array.of(1))).rejects.toThrow(/expected 3 values per image, got 1/);
  });
});

describe('Prometheus text format', () => {
  it('counters by label set, with escaped label values', () => {
    const c = new Counter('requests_total', 'Requests.');
    c.inc({ route: '/a', status: '200' });
    c.inc({ route: '/a', status: '200' }, 2);
    c.inc({ route: 'say "hi"\\', status: '404' });
    expect(c.render()).toEqual([
      '# HELP requests_total Requests.',
      '# TYPE requests_total counter',
      'requests_total{route="/a",status="200"} 3',
      'requests_total{route="say \\"hi\\"\\\\",status="404"} 1',
    ]);
  });

  it('histograms with cumulative buckets, +Inf, sum and count', () => {
    const h = new Histogram('batch', 'Batch sizes.', [4, 1, 2]);
    for (const v of [1, 3, 3, 8]) h.observe(v);
    expect(h.render().slice(2)).toEqual([
      'batch_bucket{le="1"} 1', 'batch_bucket{le="2"} 1', 'batch_bucket{le="4"} 3', 'batch_bucket{le="+Inf"} 4',
      'batch_sum 15', 'batch_count 4',
    ]);
  });
});
