import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadBuiltinDataset } from '../../src/data/datasets/builtin.js';
import { datasetDownloadDir, datasetSearchDirs, findDatasetDir, sourceUrl, type ResolveOptions } from '../../src/data/datasets/resolve.js';
import { mnistLike, removeTempDirs, tempDir } from './synthetic.js';

afterAll(removeTempDirs);

/** Writes an MNIST test split of `n` images into `<root>/mnist/`, so `n` tells which root was used. */
function writeMnistTest(root: string, n: number): void {
  const dir = join(root, 'mnist');
  mkdirSync(dir, { recursive: true });
  const { images, labels } = mnistLike(n);
  writeFileSync(join(dir, 't10k-images-idx3-ubyte.gz'), images);
  writeFileSync(join(dir, 't10k-labels-idx1-ubyte.gz'), labels);
}

function roots() {
  const dataDir = tempDir();
  const envDir = tempDir();
  const home = tempDir();
  const system = tempDir();
  const cache = join(home, '.cache', 'tessera', 'datasets');
  const opts: ResolveOptions = { dataDir, homeDir: home, env: { TESSERA_DATA: envDir }, systemDir: system, download: false };
  return { dataDir, envDir, home, system, cache, opts };
}

const request = { name: 'mnist', what: 'mnist test split', files: ['t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'], sources: [] };

describe('dataset search order', () => {
  it('lists --data-dir, $TESSERA_DATA, the home cache and the system dir, in that order', () => {
    const r = roots();
    expect(datasetSearchDirs('mnist', r.opts)).toEqual([
      join(r.dataDir, 'mnist'),
      join(r.envDir, 'mnist'),
      join(r.cache, 'mnist'),
      join(r.system, 'mnist'),
    ]);
    expect(datasetSearchDirs('mnist', { homeDir: r.home, env: {} })).toEqual([join(r.cache, 'mnist'), '/usr/share/datasets/mnist']);
  });

  it('dataDir beats TESSERA_DATA beats the cache beats the system dir', async () => {
    const r = roots();
    writeMnistTest(r.system, 4);
    expect((await loadBuiltinDataset('mnist', 'test', r.opts)).length).toBe(4);
    writeMnistTest(r.cache, 3);
    expect((await loadBuiltinDataset('mnist', 'test', r.opts)).length).toBe(3);
    writeMnistTest(r.envDir, 2);
    expect((await loadBuiltinDataset('mnist', 'test', r.opts)).length).toBe(2);
    writeMnistTest(r.dataDir, 1);
    expect((await loadBuiltinDataset('mnist', 'test', r.opts)).length).toBe(1);
    expect(findDatasetDir(request, r.opts)).toBe(join(r.dataDir, 'mnist'));
  });

  it('skips a directory that holds only some of the files', async () => {
    const r = roots();
    writeMnistTest(r.envDir, 2);
    mkdirSync(join(r.dataDir, 'mnist'));
    writeFileSync(join(r.dataDir, 'mnist', 't10k-images-idx3-ubyte.gz'), mnistLike(1).images);
    expect((await loadBuiltinDataset('mnist', 'test', r.opts)).length).toBe(2);
  });

  it('downloads into <data-dir>/<name> when given, else into the home cache', () => {
    const r = roots();
    expect(datasetDownloadDir('cifar10', r.opts)).toBe(join(r.dataDir, 'cifar10'));
    expect(datasetDownloadDir('cifar10', { homeDir: r.home })).toBe(join(r.cache, 'cifar10'));
  });

  it('a mirror replaces the directory part of the canonical URL', () => {
    const source = { file: 'a.gz', url: 'https://example.org/x/y/a.gz', md5: '' };
    expect(sourceUrl(source, { env: {} })).toBe('https://example.org/x/y/a.gz');
    expect(sourceUrl(source, { mirror: 'http://127.0.0.1:9/m', env: {} })).toBe('http://127.0.0.1:9/m/a.gz');
    expect(sourceUrl(source, { env: { TESSERA_DATASET_MIRROR: 'http://h/d/' } })).toBe('http://h/d/a.gz');
  });

  it('offline: the error lists every searched directory and says which files to put where', async () => {
    const r = roots();
    const err = await loadBuiltinDataset('fashion-mnist', 'train', r.opts).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    const msg = (err as Error).message;
    expect(msg).not.toContain('\n');
    expect(msg).toContain(
      `fashion-mnist train split not found; searched ${join(r.dataDir, 'fashion-mnist')}, ${join(r.envDir, 'fashion-mnist')}, ` +
        `${join(r.cache, 'fashion-mnist')}, ${join(r.system, 'fashion-mnist')}. Downloads are turned off.`,
    );
    expect(msg).toContain(
      'Put train-images-idx3-ubyte.gz (from http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-images-idx3-ubyte.gz), ' +
        'train-labels-idx1-ubyte.gz (from http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-labels-idx1-ubyte.gz) ' +
        `into ${join(r.dataDir, 'fashion-mnist')}`,
    );
  });

  it('offline CIFAR error names the archive and its extracted files', async () => {
    const r = roots();
    const err = (await loadBuiltinDataset('cifar100', 'test', r.opts).catch((e: Error) => e)) as Error;
    expect(err.message).toContain(
      'Put cifar-100-binary.tar.gz (from https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz) or its extracted train.bin, test.bin, fine_label_names.txt',
    );
  });

  it('rejects unknown dataset names', async () => {
    await expect(loadBuiltinDataset('imagenet', 'train', { download: false })).rejects.toThrow(
      "unknown dataset 'imagenet', expected one of fashion-mnist, mnist, cifar10, cifar100",
    );
  });
});
