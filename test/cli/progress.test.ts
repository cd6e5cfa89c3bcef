/** The training progress output: the bar fills per epoch, and its ETA, which is the run's, says so. */
import { describe, expect, it } from 'vitest';
import { createProgress, formatRate } from '../../src/cli/progress.js';
import type { StepInfo } from '../../src/train/trainer.js';

/** Enough of a terminal for cli-progress: it writes, moves the cursor and clears lines. */
function fakeStream(isTTY: boolean) {
  let text = '';
  const stream = {
    isTTY, columns: 200, rows: 40, text: () => text,
    write(s: string) { text += s; return true; },
    cursorTo() { return true; }, moveCursor() { return true; }, clearLine() { return true; }, clearScreenDown() { return true; },
    on() { return stream; }, once() { return stream; }, removeListener() { return stream; }, off() { return stream; },
  };
  return stream;
}

const step: StepInfo = { epoch: 2, epochs: 5, batch: 10, batches: 40, loss: 0.5, lr: 1e-3, imagesPerSecond: 200, etaSeconds: 303 };

describe('progress', () => {
  it.each([[true], [false]])('labels the ETA as the run\'s (terminal: %s)', (isTTY) => {
    const s = fakeStream(isTTY);
    const p = createProgress(s as unknown as NodeJS.WriteStream);
    p.step(step);
    p.stop();
    expect(s.text()).toContain('200 img/s run ETA 5m03s');
  });
});

describe('formatRate', () => {
  it('keeps two significant digits below 10 img/s and whole numbers above', () => {
    expect([0.49, 0.135, 3.14159, 9.96, 10, 87.6].map(formatRate)).toEqual(['0.49', '0.14', '3.1', '10', '10', '88']);
  });
});
