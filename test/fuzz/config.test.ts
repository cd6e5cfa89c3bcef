/**
 * Fuzzing training config files as `tessera train --config FILE` reads them (readConfigFile, then
 * resolveTrainConfig): mutations of the shipped recipe and of JSON/YAML configs (YAML anchors,
 * aliases, tags and merge keys among the tokens), and configs built from the schema's own keys
 * with hostile values. Any input gives a config, or a one-line ConfigError.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, readConfigFile, resolveTrainConfig, trainConfigSchema, type TrainConfig } from '../../src/train/config.js';
import { expectAllowed, fc, fuzz, mutatedText, peakRss, RSS_GROWTH_LIMIT, scratchDir, timeout, utf8 } from './helpers.js';

const recipe = readFileSync(new URL('../../recipes/fashion-mnist.yaml', import.meta.url), 'utf8');
const YAML = [
  recipe,
  'model: vit_tiny_patch4_28\nmodel-kwargs:\n  embed_dim: 64\n  depth: 2\n  global_pool: avg\nepochs: 2\nclasses: [0, 1, 2]\nmixup: 0.2\n',
  'lr: &b 0.001\nmin_lr: *b\nepochs: 3\nbatch_size: 64\ndataset: ./my-images\nval_split: 0.2\nclasses: !!seq [1, 2]\n',
];
const JSON_CONFIGS = [
  '{"model": "vit_tiny_patch4_28", "epochs": 1, "lr": 0.001, "trainLimit": 64, "modelKwargs": {"depth": 1, "stem_strides": [2, 2]}}',
  '{"dataset": "cifar10", "opt": "sgd", "momentum": 0.9, "nesterov": true, "sched": "step", "decay_epochs": 2, "pretrained": "w.safetensors"}',
];
const KEYS = Object.keys(trainConfigSchema.shape);
const DICTIONARY = [...KEYS.map((k) => `${k}: `), 'modelKwargs:\n  ', 'model_kwargs: {', '&x [*x]', '&y {a: *y}', '!!set {a, b}', '!!omap [a: 1]', '!!timestamp 2001-12-14', '0x1F', '.inf', '~'].map(utf8);

const resolve = (path: string) => resolveTrainConfig(readConfigFile(path), path);
const wellFormed = (c: TrainConfig) => {
  expect(trainConfigSchema.safeParse(c).success).toBe(true);
};

let rss0 = 0;
const scratch = scratchDir('config');
/** Process warnings while reading configs: the YAML parser's went to stderr as multi-line warnings. */
const warnings: string[] = [];
const onWarning = (w: Error) => { warnings.push(`${w.name}: ${w.message.split('\n')[0]}`); };
beforeAll(() => {
  rss0 = peakRss();
  process.on('warning', onWarning);
});
afterAll(() => {
  process.off('warning', onWarning);
  scratch.remove();
  expect(peakRss() - rss0).toBeLessThan(RSS_GROWTH_LIMIT);
  expect(warnings.slice(0, 3)).toEqual([]);
});

describe('fuzz: config files', () => {
  it('the seeds resolve', () => {
    for (const [i, text] of [...YAML.map((t) => ['yaml', t]), ...JSON_CONFIGS.map((t) => ['json', t])].entries()) {
      const p = scratch.path(`seed${i}.${text[0]}`);
      writeFileSync(p, text[1]!);
      expect(expectAllowed('config', () => resolve(p), { errors: [ConfigError], inputBytes: text[1]!.length, check: wellFormed }).ok, text[1]).toBe(true);
    }
  });

  for (const [ext, corpus] of [['yaml', YAML], ['json', JSON_CONFIGS]] as const) {
    it(`${ext}: mutated config files (YAML and JSON tokens, schema keys) and random text`, () => {
      const p = scratch.path(`fuzz.${ext}`);
      fuzz(`config-${ext}`, [mutatedText(corpus, { dictionary: DICTIONARY })], (text) => {
        writeFileSync(p, text);
        expectAllowed('config', () => resolve(p), { errors: [ConfigError], inputBytes: text.length, check: wellFormed });
      }, 800);
    }, timeout(60_000));
  }

  it('YAML configs of the schema\'s keys whose values are anchors that contain themselves, deep nests, tags and long strings', () => {
    const yamlValue = fc.oneof(
      fc.constantFrom('&x [*x]', '&x {a: *x}', '&x [1, [2, *x]]', '!!binary aGVsbG8=', '!!str 5', '!!int "7"', '!!float .nan', '{depth: &d [*d]}', '[1, 2', '"a\\nb"', '? complex\n  : key'),
      fc.integer({ min: 1, max: 1000 }).map((n) => '['.repeat(n) + ']'.repeat(n)),
      fc.integer({ min: 0, max: 100_000 }).map((n) => JSON.stringify('x'.repeat(n))),
      fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v) ?? 'null'),
    );
    const key = fc.oneof(fc.constantFrom(...KEYS, 'model_kwargs'), fc.string({ maxLength: 8, unit: 'binary' }).map((k) => JSON.stringify(k)));
    const p = scratch.path('values.yaml');
    fuzz('config-yaml-values', [fc.array(fc.tuple(key, yamlValue), { minLength: 1, maxLength: 4 })], (entries) => {
      const text = entries.map(([k, v]) => `${k}: ${v}`).join('\n');
      writeFileSync(p, text);
      expectAllowed('config', () => resolve(p), { errors: [ConfigError], inputBytes: text.length, check: wellFormed });
    }, 600);
  }, timeout(60_000));

  it('configs of the schema\'s keys (camel, snake and kebab case) with hostile values', () => {
    const spell = (k: string, how: number) => (how === 0 ? k : k.replace(/[A-Z]/g, (c) => `${how === 1 ? '_' : '-'}${c.toLowerCase()}`));
    const value = fc.oneof(
      fc.jsonValue({ maxDepth: 3 }),
      fc.constantFrom(0, -1, 0.5, 1, 2 ** 53, 1e308, '', 'none', 'vit_tiny_patch4_28', 'pgd', 'avg', true, null, [], {}, [1, 2], { depth: 'x' }, { embed_dim: -1 }, { nope: 1 }),
    );
    const config = fc.dictionary(fc.tuple(fc.constantFrom(...KEYS, 'model_kwargs', '__proto__', 'constructor', 'x'), fc.integer({ min: 0, max: 2 })).map(([k, how]) => spell(k, how)), value, { maxKeys: 6 });
    const p = scratch.path('hostile.json');
    fuzz('config-values', [config], (c) => {
      const text = JSON.stringify(c);
      writeFileSync(p, text);
      expectAllowed('config', () => resolve(p), { errors: [ConfigError], inputBytes: text.length, check: wellFormed });
    }, 1000);
  }, timeout(60_000));

  describe('regressions', () => {
    const cases: [string, string, RegExp][] = [
      // found by the YAML value fuzz: quoting the bad value threw "Converting circular structure to JSON"
      ['cycle.yaml', 'epochs: &x [*x]\n', /"epochs" expected number, received array, got \[…\]$/],
      // JSON.stringify of a deep nest overflowed the stack (RangeError)
      ['deep.json', `{"epochs": ${'['.repeat(20_000)}${']'.repeat(20_000)}}`, /"epochs" expected number, received array, got \[…\]$/],
      // the whole value was quoted: a 100 kB message
      ['long.json', `{"epochs": ${JSON.stringify('x'.repeat(100_000))}}`, /"epochs" expected number, received string, got "x+…$/],
      // keys and JSON.parse's own message quote the file's newlines and carriage returns
      ['newline-key.json', '{"k\\nk": 1}', /unknown key "k\\nk"; known keys/],
      ['carriage-return.json', '{"a":\r x}', /is not valid JSON: Unexpected token 'x', "\{"a":\s+x\}" is not valid JSON$/],
    ];
    it('tag.yaml: an unresolved tag is read as YAML reads it, without a multi-line warning on stderr', async () => {
      const p = scratch.path('tag.yaml');
      writeFileSync(p, 'epochs: !nosuch x\n');
      const out = expectAllowed('config', () => resolve(p), { errors: [ConfigError], inputBytes: 20 });
      if (!out.ok) expect(out.error.message).toMatch(/"epochs" expected number, received string, got "x"$/);
      await new Promise((r) => setTimeout(r, 20)); // process warnings are emitted on a later tick
      expect(warnings).toEqual([]);
    });

    for (const [name, text, message] of cases) {
      it(name, () => {
        const p = scratch.path(name);
        writeFileSync(p, text);
        const out = expectAllowed('config', () => resolve(p), { errors: [ConfigError], inputBytes: text.length });
        expect(out.ok).toBe(false);
        if (!out.ok) expect(out.error.message).toMatch(message);
      });
    }
  });
});
