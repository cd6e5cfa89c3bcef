/** Image folders and manifests as datasets: class order, layouts, splits, and the errors users see before training. */
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compareCodePoints, openImageDataset, stratifiedSplit } from '../../src/data/datasets/folder_dataset.js';
import { removeTempDirs, tempDir } from './synthetic.js';

afterAll(removeTempDirs);

/** Writes empty files at the given relative paths (the datasets read no pixels). */
function tree(files: string[]): string {
  const dir = tempDir('tessera-folder-');
  for (const f of files) {
    mkdirSync(join(dir, f, '..'), { recursive: true });
    writeFileSync(join(dir, f), '');
  }
  return dir;
}

describe('image folders', () => {
  it("orders classes as Python's sorted() (code points: upper case first, astral after BMP)", () => {
    const names = ['b', 'B', 'a', '_x', 'Z9', 'z10', 'é', '\u{ff5e}', '\u{1f600}', '10', '9'];
    const dir = tree(names.map((n) => `${n}/img.png`));
    const ds = openImageDataset(dir);
    // sorted(['b','B','a','_x','Z9','z10','é','～','😀','10','9']) in Python 3
    expect(ds.classNames).toEqual(['10', '9', 'B', 'Z9', '_x', 'a', 'b', 'z10', 'é', '\u{ff5e}', '\u{1f600}']);
    expect([...names].sort(compareCodePoints)).toEqual(ds.classNames);
    expect([...names].sort()).not.toEqual(ds.classNames); // UTF-16 order puts 😀 before ～
  });

  it('walks class folders recursively in os.walk order, keeps images only, skips hidden entries', () => {
    const dir = tree(['cat/b.jpg', 'cat/a.PNG', 'cat/sub/c.webp', 'cat/sub-x/d.gif', 'cat/notes.txt', 'cat/.hidden.jpg', 'dog/x.tiff', 'dog/y.avif', '.ipynb_checkpoints/z.png']);
    const ds = openImageDataset(dir);
    expect(ds.layout).toBe('class-folders');
    expect(ds.classNames).toEqual(['cat', 'dog']);
    // sorted(os.walk): root "cat" < "cat/sub" < "cat/sub-x"; files sorted within each
    expect(ds.train.paths.map((p) => p.slice(dir.length + 1))).toEqual(['cat/a.PNG', 'cat/b.jpg', 'cat/sub/c.webp', 'cat/sub-x/d.gif', 'dog/x.tiff', 'dog/y.avif']);
    expect([...ds.train.labels]).toEqual([0, 0, 0, 0, 1, 1]);
    expect(ds.ignoredFiles).toBe(1);
    expect(ds.val).toBeUndefined();
  });

  it('follows symlinked class folders', () => {
    const dir = tree(['real/a.jpg', 'other/b.jpg']);
    const root = tempDir('tessera-links-');
    symlinkSync(join(dir, 'real'), join(root, 'linked'));
    symlinkSync(join(dir, 'other'), join(root, 'other'));
    expect(openImageDataset(root).classNames).toEqual(['linked', 'other']);
  });

  it('detects train/ + val/ and maps val folders to the train classes', () => {
    const dir = tree(['train/a/1.jpg', 'train/b/2.jpg', 'train/c/3.jpg', 'val/b/4.jpg', 'val/a/5.jpg']);
    const ds = openImageDataset(dir, { valSplit: 0.5 });
    expect(ds.layout).toBe('train-val-folders');
    expect(ds.valSource).toBe('folder');
    expect(ds.train.length).toBe(3);
    expect([...ds.val!.labels]).toEqual([0, 1]);
    expect(ds.val!.classNames).toEqual(['a', 'b', 'c']);
    const bad = tree(['train/a/1.jpg', 'validation/zebra/2.jpg']);
    expect(() => openImageDataset(bad)).toThrow(/validation: class folder "zebra" not among the 1 classes \(a\)/);
  });

  it('holds out a seeded, stratified validation split', () => {
    const files = ['a', 'b', 'c'].flatMap((c, k) => Array.from({ length: 10 * (k + 1) }, (_, i) => `${c}/${String(i).padStart(3, '0')}.jpg`));
    const dir = tree(files);
    const ds = openImageDataset(dir, { valSplit: 0.2, seed: 5 });
    expect(ds.valSource).toBe('split');
    const count = (labels: Int32Array, c: number) => labels.filter((l) => l === c).length;
    expect([0, 1, 2].map((c) => count(ds.val!.labels, c))).toEqual([2, 4, 6]);
    expect([0, 1, 2].map((c) => count(ds.train.labels, c))).toEqual([8, 16, 24]);
    expect(new Set([...ds.train.paths, ...ds.val!.paths]).size).toBe(60);
    expect(openImageDataset(dir, { valSplit: 0.2, seed: 5 }).val!.paths).toEqual(ds.val!.paths);
    expect(openImageDataset(dir, { valSplit: 0.2, seed: 6 }).val!.paths).not.toEqual(ds.val!.paths);
    // a one-image class stays in training; every class keeps at least one training image
    const split = stratifiedSplit(Int32Array.from([0, 1, 1]), 2, 0.9, 0);
    expect(split.val.length).toBe(1);
    expect(split.train).toContain(0);
  });

  it('opens a flat folder of images as one unlabelled class for pretraining, held-out split included', () => {
    const dir = tree([...Array.from({ length: 20 }, (_, i) => `img${String(i).padStart(2, '0')}.png`), 'notes.txt', '.hidden/x.png']);
    const ds = openImageDataset(dir, { unlabelled: true, valSplit: 0.1, seed: 1 });
    expect(ds.layout).toBe('flat');
    expect(ds.classNames).toEqual(['unlabelled']);
    expect(ds.train.length + ds.val!.length).toBe(20);
    expect(ds.val!.length).toBe(2);
    expect(ds.ignoredFiles).toBe(1);
    expect([...ds.train.labels, ...ds.val!.labels].every((l) => l === 0)).toBe(true);
    expect(() => openImageDataset(tree(['notes.txt']), { unlabelled: true })).toThrow(/has no images .* and no subfolders/);
    // with class subfolders, the folder is read as classes even for pretraining
    expect(openImageDataset(tree(['cat/a.png', 'dog/b.png']), { unlabelled: true }).layout).toBe('class-folders');
  });

  it('rejects folders that cannot be trained on, before any decoding', () => {
    expect(() => openImageDataset('/nonexistent/photos')).toThrow(/does not exist \(expected an image folder/);
    expect(() => openImageDataset(tree(['a.jpg', 'b.jpg']))).toThrow(/has no class subfolders.*tessera pretrain/);
    expect(() => openImageDataset(tree(['cat/a.jpg', 'dog/readme.txt']))).toThrow(/class folder .*dog has no images/);
    expect(() => openImageDataset(tree(['cat/a.jpg']), { valSplit: 1 })).toThrow(/val-split must be in \[0, 1\)/);
    expect(() => openImageDataset(tree(['cat/a.jpg', 'dog/b.jpg']), { classNames: ['cat'] })).toThrow(/class folder "dog" not among/);
    const f = join(tree(['x.txt']), 'x.txt');
    expect(() => openImageDataset(f)).toThrow(/not a manifest/);
  });
});

describe('manifests', () => {
  it('reads CSV with a header, quoted fields and a split column; paths relative to the manifest', () => {
    const dir = tree(['img/a 1.jpg', 'img/b,2.jpg', 'img/c.png', 'img/d.png']);
    writeFileSync(join(dir, 'data.csv'), 'split,filename,label\ntrain,img/a 1.jpg,dog\ntrain,"img/b,2.jpg",cat\r\nval,img/c.png,dog\ntrain,img/d.png,"cat"\n');
    const ds = openImageDataset(join(dir, 'data.csv'));
    expect(ds.layout).toBe('manifest');
    expect(ds.classNames).toEqual(['cat', 'dog']);
    expect(ds.train.paths).toEqual([join(dir, 'img/a 1.jpg'), join(dir, 'img/b,2.jpg'), join(dir, 'img/d.png')]);
    expect([...ds.train.labels]).toEqual([1, 0, 0]);
    expect(ds.valSource).toBe('manifest');
    expect([...ds.val!.labels]).toEqual([1]);
  });

  it('reads headerless CSV and JSONL (numeric labels in numeric order)', () => {
    const dir = tree(['a.jpg', 'b.jpg', 'c.jpg']);
    writeFileSync(join(dir, 'm.csv'), 'a.jpg,2\nb.jpg,10\nc.jpg,2\n');
    expect(openImageDataset(join(dir, 'm.csv')).classNames).toEqual(['2', '10']);
    writeFileSync(join(dir, 'm.jsonl'), '{"path": "a.jpg", "label": 1}\n\n{"image": "b.jpg", "class": 0}\n{"path": "c.jpg", "label": 1, "split": "val"}\n');
    const ds = openImageDataset(join(dir, 'm.jsonl'));
    expect(ds.classNames).toEqual(['0', '1']);
    expect([...ds.train.labels]).toEqual([1, 0]);
    expect(ds.val!.length).toBe(1);
  });

  it('names missing files, unknown labels and malformed rows', () => {
    const dir = tree(['a.jpg']);
    writeFileSync(join(dir, 'missing.csv'), 'path,label\na.jpg,x\nnope.jpg,y\ngone/too.jpg,x\n');
    expect(() => openImageDataset(join(dir, 'missing.csv'))).toThrow(/2 of 3 files do not exist \(line 3: nope\.jpg; line 4: gone\/too\.jpg\)/);
    writeFileSync(join(dir, 'labels.csv'), 'a.jpg,cat\na.jpg,zebra\n');
    expect(() => openImageDataset(join(dir, 'labels.csv'), { classNames: ['cat', 'dog'] })).toThrow(/unknown label "zebra" \(first on line 2\); the classes are cat, dog/);
    writeFileSync(join(dir, 'bad.jsonl'), '{"path": "a.jpg", "label": "x"}\n{"path": "a.jpg"\n');
    expect(() => openImageDataset(join(dir, 'bad.jsonl'))).toThrow(/line 2: not valid JSON/);
    writeFileSync(join(dir, 'nolabel.jsonl'), '{"path": "a.jpg"}\n');
    expect(() => openImageDataset(join(dir, 'nolabel.jsonl'))).toThrow(/line 1: missing "label"/);
    writeFileSync(join(dir, 'short.csv'), 'a.jpg\n');
    expect(() => openImageDataset(join(dir, 'short.csv'))).toThrow(/line 1: expected path,label/);
    writeFileSync(join(dir, 'empty.csv'), 'path,label\n');
    expect(() => openImageDataset(join(dir, 'empty.csv'))).toThrow(/lists no images/);
    writeFileSync(join(dir, 'split.csv'), 'path,label,split\na.jpg,x,holdout\n');
    expect(() => openImageDataset(join(dir, 'split.csv'))).toThrow(/split "holdout" is not train or val/);
  });
});
