/**
 * `tessera export --triton DIR`: the model repository Triton loads. config.pbtxt is parsed by
 * protobuf's own text-format parser (Python google.protobuf, with message classes for Triton's
 * ModelConfig fields, test/helpers/triton_model_config.py) and compared with the ONNX files'
 * inputs and outputs as the onnx package reads them.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metaFor, saveCheckpoint } from '../../src/checkpoint/checkpoint.js';
import { createModel } from '../../src/models/registry.js';
import { runCli } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-triton-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const LABELS = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];
const PARSER = fileURLToPath(new URL('../helpers/triton_model_config.py', import.meta.url));
const isolated = { HOME: join(dir, 'home'), TESSERA_DATASET_MIRROR: 'http://127.0.0.1:9/', TESSERA_DATA: '' };
let checkpoint: string;

beforeAll(() => {
  const model = createModel('vit_tiny_patch4_28', { seed: 3 });
  checkpoint = join(dir, 'model.safetensors');
  saveCheckpoint(checkpoint, model, metaFor('vit_tiny_patch4_28', model, LABELS));
});

interface Parsed {
  config: Record<string, any>;
  onnx: { inputs: OnnxTensor[]; outputs: OnnxTensor[] }[];
}
interface OnnxTensor { name: string; elem_type: string; dims: (number | string)[] }

const parse = (config: string, models: string[]): Parsed =>
  JSON.parse(execFileSync('/usr/bin/python3', [PARSER, config, ...models], { encoding: 'utf8' })) as Parsed;

// ONNX element type → Triton data type, as Triton's ONNX Runtime backend maps them
const TRITON_TYPE: Record<string, string> = { FLOAT: 'TYPE_FP32', UINT8: 'TYPE_UINT8' };

/** Each config tensor is the ONNX tensor of the same name, its batch axis (symbolic) left out. */
function expectAgrees(configTensors: Record<string, any>[], onnxTensors: OnnxTensor[]): void {
  expect(configTensors.map((t) => t.name)).toEqual(onnxTensors.map((t) => t.name));
  for (const [i, o] of onnxTensors.entries()) {
    const c = configTensors[i]!;
    expect(c.data_type).toBe(TRITON_TYPE[o.elem_type]);
    expect(typeof o.dims[0]).toBe('string');
    expect(c.dims.map(Number)).toEqual(o.dims.slice(1));
  }
}

describe('tessera export --triton', () => {
  it('fp32 as version 1, int8 as version 2, labels, dynamic batching; config.pbtxt agrees with both ONNX files', async () => {
    const repo = join(dir, 'repo');
    const r = await runCli(['export', '--checkpoint', checkpoint, '--triton', repo, '--quantize', 'int8', '--samples', '2', '--json'], isolated);
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    const modelDir = join(repo, 'vit_tiny_patch4_28');
    expect(s.triton.model).toBe(modelDir);
    expect(s.out).toBeUndefined();
    const v1 = join(modelDir, '1', 'model.onnx');
    const v2 = join(modelDir, '2', 'model.onnx');
    const p = parse(join(modelDir, 'config.pbtxt'), [v1, v2]);
    expect(p.config).toMatchObject({
      name: 'vit_tiny_patch4_28', platform: 'onnxruntime_onnx', max_batch_size: 32,
      version_policy: { specific: { versions: ['1', '2'] } },
      dynamic_batching: { preferred_batch_size: [8, 16, 32], max_queue_delay_microseconds: '1000' },
    });
    for (const sig of p.onnx) {
      expectAgrees(p.config.input, sig.inputs);
      expectAgrees(p.config.output, sig.outputs);
    }
    expect(p.onnx[0]!.inputs[0]).toEqual({ name: 'input', elem_type: 'FLOAT', dims: ['batch', 1, 28, 28] });
    expect(p.config.output[0].label_filename).toBe('labels.txt');
    expect(readFileSync(join(modelDir, 'labels.txt'), 'utf8').split('\n').slice(0, -1)).toEqual(LABELS);
    // version 2 really is the quantised model
    expect(readFileSync(v2).byteLength).toBeLessThan(readFileSync(v1).byteLength / 3);
  }, 90_000);

  it('--preprocess gives a uint8 image input; --max-batch-size caps the preferred sizes; --out is written too', async () => {
    const repo = join(dir, 'repo-u8');
    const out = join(dir, 'u8.onnx');
    const r = await runCli(['export', '--checkpoint', checkpoint, '--triton', repo, '--triton-name', 'fmnist', '--preprocess', '--max-batch-size', '8', '--out', out, '--samples', '2'], isolated);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`wrote Triton model repository ${join(repo, 'fmnist')}`);
    const modelDir = join(repo, 'fmnist');
    expect(existsSync(join(modelDir, '2'))).toBe(false);
    const p = parse(join(modelDir, 'config.pbtxt'), [join(modelDir, '1', 'model.onnx')]);
    expect(p.config).toMatchObject({ name: 'fmnist', max_batch_size: 8, version_policy: { specific: { versions: ['1'] } }, dynamic_batching: { preferred_batch_size: [8] } });
    expectAgrees(p.config.input, p.onnx[0]!.inputs);
    expectAgrees(p.config.output, p.onnx[0]!.outputs);
    expect(p.config.input[0]).toMatchObject({ name: 'image', data_type: 'TYPE_UINT8', dims: ['28', '28', '1'] });
    expect(readFileSync(out).equals(readFileSync(join(modelDir, '1', 'model.onnx')))).toBe(true);
  }, 60_000);

  it('refuses a preferred batch size above --max-batch-size, and a command with neither --out nor --triton (exit 2, nothing written)', async () => {
    const repo = join(dir, 'repo-bad');
    const a = await runCli(['export', '--checkpoint', checkpoint, '--triton', repo, '--max-batch-size', '16', '--preferred-batch-size', '8,32'], isolated);
    expect(a.code).toBe(2);
    expect(a.stderr).toContain('--preferred-batch-size 8,32 exceeds --max-batch-size 16');
    expect(existsSync(repo)).toBe(false);
    const b = await runCli(['export', '--checkpoint', checkpoint], isolated);
    expect(b.code).toBe(2);
    expect(b.stderr).toContain('give --out model.onnx, --triton DIR, or both');
  }, 30_000);
});
