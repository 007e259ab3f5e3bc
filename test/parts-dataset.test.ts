import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import sharp from 'sharp';
import type { DatasetManifest } from '../core/data/dataset';
import {
  generatePartsDataset,
  PART_TYPES,
  type PartsDatasetOptions,
  PartsDatasetOptionsSchema,
  type PartsGroundTruth,
  parsePartsDatasetOptions,
} from '../core/data/parts-dataset';
import { featureCacheKey } from '../core/features/feature-store';
import { KEY_BACKBONE } from './support/dataset-trees';

const SMALL: PartsDatasetOptions = { seed: 7, classes: 3, trainPerClass: 3, testPerClass: 2, imageSize: 64 };

const tempDirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'parts-dataset-'));
  tempDirs.push(dir);
  return dir;
}
after(async () => {
  await Promise.all(tempDirs.map((dir) => fs.rm(dir, { recursive: true, force: true })));
});

function withoutRoot(manifest: DatasetManifest): Omit<DatasetManifest, 'root'> {
  const { root: _root, ...rest } = manifest;
  return rest;
}

async function readTruth(dir: string): Promise<PartsGroundTruth> {
  return JSON.parse(await fs.readFile(path.join(dir, 'parts.json'), 'utf8')) as PartsGroundTruth;
}

async function mtimes(dir: string, manifest: DatasetManifest): Promise<number[]> {
  const files = ['manifest.json', 'parts.json', ...manifest.items.map((item) => item.path)];
  return Promise.all(files.map(async (file) => (await fs.stat(path.join(dir, file))).mtimeMs));
}

describe('generatePartsDataset', () => {
  test('one seed gives identical manifests and image bytes; another seed gives other images', async () => {
    const [a, b, c] = [await tempDir(), await tempDir(), await tempDir()];
    const first = await generatePartsDataset(SMALL, a);
    const second = await generatePartsDataset(SMALL, b);
    const other = await generatePartsDataset({ ...SMALL, seed: 8 }, c);

    assert.equal(first.root, a);
    assert.deepEqual(withoutRoot(first), withoutRoot(second));
    assert.deepEqual(
      await fs.readFile(path.join(a, 'parts.json')),
      await fs.readFile(path.join(b, 'parts.json')),
    );
    for (const item of first.items) {
      const bytes = await fs.readFile(path.join(a, item.path));
      assert.deepEqual(bytes, await fs.readFile(path.join(b, item.path)), item.path);
      assert.notDeepEqual(bytes, await fs.readFile(path.join(c, item.path)), item.path);
    }
    assert.equal(other.items.length, first.items.length);
    // Same file names, other images: the features' cache key follows the generator's settings.
    assert.equal(featureCacheKey(first, 'test', KEY_BACKBONE), featureCacheKey(second, 'test', KEY_BACKBONE));
    assert.notEqual(
      featureCacheKey(first, 'test', KEY_BACKBONE),
      featureCacheKey(other, 'test', KEY_BACKBONE),
    );
  });

  test('images have the requested size and every part box lies inside its image', async () => {
    const dir = await tempDir();
    const manifest = await generatePartsDataset({ ...SMALL, imageSize: 96, distractorsPerImage: 3 }, dir);
    for (const item of manifest.items) {
      const meta = await sharp(path.join(dir, item.path)).metadata();
      assert.equal(meta.format, 'png');
      assert.equal(meta.width, 96);
      assert.equal(meta.height, 96);
      assert.ok(item.parts && item.parts.length === 3 + 3, item.path);
      for (const box of item.parts) {
        assert.ok(Number.isInteger(box.x0) && Number.isInteger(box.y0), item.path);
        assert.ok(Number.isInteger(box.x1) && Number.isInteger(box.y1), item.path);
        assert.ok(box.x0 >= 0 && box.y0 >= 0 && box.x1 <= meta.width && box.y1 <= meta.height, item.path);
        assert.ok(box.x1 > box.x0 && box.y1 > box.y0, item.path);
      }
      // Parts are placed apart wherever there is room, and six small parts always leave room.
      for (const [i, a] of item.parts.entries()) {
        for (const b of item.parts.slice(i + 1)) {
          const apart = a.x1 <= b.x0 || b.x1 <= a.x0 || a.y1 <= b.y0 || b.y1 <= a.y0;
          assert.ok(apart, `${item.path}: ${a.part} overlaps ${b.part}`);
        }
      }
    }
  });

  test('part boxes are in image pixels where the parts are drawn: they hold every drawn pixel and are tight', async () => {
    const dir = await tempDir();
    // On the plain grey background every pixel that is not grey belongs to a part (each has a dark outline).
    const manifest = await generatePartsDataset(
      { ...SMALL, classes: 2, trainPerClass: 2, testPerClass: 1, imageSize: 224, backgrounds: 'plain' },
      dir,
    );
    for (const item of manifest.items) {
      const { data, info } = await sharp(path.join(dir, item.path))
        .removeAlpha()
        .raw()
        .toBuffer({ resolveWithObject: true });
      const drawn = (x: number, y: number) => {
        const at = (y * info.width + x) * 3;
        return Math.max(...[0, 1, 2].map((k) => Math.abs(data[at + k]! - 0xc8))) > 24;
      };
      const boxes = item.parts!;
      for (let y = 0; y < info.height; y++) {
        for (let x = 0; x < info.width; x++) {
          if (!drawn(x, y)) continue;
          const inside = boxes.some((b) => x >= b.x0 && x < b.x1 && y >= b.y0 && y < b.y1);
          assert.ok(inside, `${item.path}: pixel (x ${x}, y ${y}) is drawn outside every part box`);
        }
      }
      // The drawn pixels within a box reach its four sides (up to antialiasing): x is the column, y the row.
      for (const b of boxes) {
        const extent = { x0: Infinity, y0: Infinity, x1: -Infinity, y1: -Infinity };
        for (let y = b.y0; y < b.y1; y++) {
          for (let x = b.x0; x < b.x1; x++) {
            if (!drawn(x, y)) continue;
            extent.x0 = Math.min(extent.x0, x);
            extent.y0 = Math.min(extent.y0, y);
            extent.x1 = Math.max(extent.x1, x + 1);
            extent.y1 = Math.max(extent.y1, y + 1);
          }
        }
        const slack = Math.max(extent.x0 - b.x0, extent.y0 - b.y0, b.x1 - extent.x1, b.y1 - extent.y1);
        assert.ok(
          slack <= 2,
          `${item.path}: ${b.part} [${b.x0}, ${b.y0}, ${b.x1}, ${b.y1}] drawn over ${JSON.stringify(extent)}`,
        );
      }
    }
  });

  test('each image shows its class parts and distractors of other types only', async () => {
    const dir = await tempDir();
    const manifest = await generatePartsDataset(SMALL, dir);
    const truth = await readTruth(dir);
    const vocabulary = new Set(PART_TYPES.map((type) => type.name));
    const classParts = new Set(truth.classes.flatMap((definition) => definition.parts));
    assert.ok(truth.distractorPool.length >= 5);
    for (const part of truth.distractorPool) assert.ok(vocabulary.has(part) && !classParts.has(part), part);
    assert.deepEqual(
      truth.classes.map((definition) => definition.name),
      manifest.classes,
    );
    for (const item of manifest.items) {
      const definition = truth.classes[item.label]!;
      const own = item.parts!.filter((box) => !box.distractor).map((box) => box.part);
      const distractors = item.parts!.filter((box) => box.distractor).map((box) => box.part);
      assert.deepEqual([...own].sort(), [...definition.parts].sort(), item.path);
      assert.equal(distractors.length, 2, item.path);
      assert.equal(new Set(distractors).size, distractors.length, item.path);
      for (const part of distractors) assert.ok(truth.distractorPool.includes(part), `${item.path}: ${part}`);
    }
    assert.deepEqual(
      truth.images.map((image) => image.parts),
      manifest.items.map((item) => item.parts),
    );
  });

  test('every class has trainPerClass and testPerClass images, in <split>/<class>/ folders', async () => {
    const dir = await tempDir();
    const manifest = await generatePartsDataset(
      { ...SMALL, classes: 4, trainPerClass: 2, testPerClass: 1 },
      dir,
    );
    assert.deepEqual(manifest.classes, ['class-00', 'class-01', 'class-02', 'class-03']);
    for (const [label, name] of manifest.classes.entries()) {
      for (const [split, count] of [
        ['train', 2],
        ['test', 1],
      ] as const) {
        const items = manifest.items.filter((item) => item.label === label && item.split === split);
        assert.equal(items.length, count, `${name} ${split}`);
        for (const item of items) assert.ok(item.path.startsWith(`images/${split}/${name}/`), item.path);
      }
    }
  });

  test('signatures stay distinct when there are more classes than disjoint part sets', async () => {
    const dir = await tempDir();
    const options = { seed: 3, classes: 30, trainPerClass: 1, testPerClass: 1, imageSize: 32 };
    await generatePartsDataset(options, dir);
    const truth = await readTruth(dir);
    const signatures = truth.classes.map((definition) => [...definition.parts].sort().join('|'));
    assert.equal(new Set(signatures).size, 30);
    for (const definition of truth.classes) assert.equal(new Set(definition.parts).size, 3);
    for (const image of truth.images) {
      const own = truth.classes[image.label]!.parts;
      const distractors = image.parts.filter((box) => box.distractor);
      assert.equal(distractors.length, 2, image.path);
      for (const box of distractors) assert.ok(!own.includes(box.part), `${image.path}: ${box.part}`);
    }
  });

  test('a second call with the same options reuses the folder; changed options regenerate it', async () => {
    const dir = await tempDir();
    const progress: number[] = [];
    const first = await generatePartsDataset(SMALL, dir, (done, total) => {
      assert.equal(total, 15);
      progress.push(done);
    });
    assert.deepEqual(
      progress,
      Array.from({ length: 16 }, (_, i) => i),
    );
    const before = await mtimes(dir, first);

    const again = await generatePartsDataset({ ...SMALL }, dir, () =>
      assert.fail('cache hit must not render'),
    );
    assert.deepEqual(again, first);
    assert.deepEqual(await mtimes(dir, first), before);

    const fewer = await generatePartsDataset({ ...SMALL, classes: 2 }, dir);
    assert.equal(fewer.items.length, 10);
    await assert.rejects(fs.access(path.join(dir, 'images', 'train', 'class-02')));
    const leftovers = (await fs.readdir(dir)).filter((name) => name.endsWith('.tmp'));
    assert.deepEqual(leftovers, []);
  });

  test('a folder without manifest.json or with missing images is regenerated', async () => {
    const dir = await tempDir();
    const first = await generatePartsDataset(SMALL, dir);
    await fs.rm(path.join(dir, 'manifest.json'));
    assert.deepEqual(await generatePartsDataset(SMALL, dir), first);

    await fs.rm(path.join(dir, first.items[0]!.path));
    let rendered = 0;
    await generatePartsDataset(SMALL, dir, (done) => {
      rendered = done;
    });
    assert.equal(rendered, first.items.length);
    await fs.access(path.join(dir, first.items[0]!.path));
  });
});

describe('PartsDatasetOptionsSchema', () => {
  test('fills in the documented defaults', () => {
    assert.deepEqual(PartsDatasetOptionsSchema.parse({ seed: 1 }), {
      seed: 1,
      classes: 10,
      trainPerClass: 24,
      testPerClass: 10,
      imageSize: 224,
      partsPerClass: 3,
      distractorsPerImage: 2,
      partScale: [0.14, 0.26],
      backgrounds: 'varied',
    });
  });

  test('errors name the offending field', async () => {
    const cases: [unknown, RegExp][] = [
      [{}, /seed:/],
      [{ seed: 1.5 }, /seed:/],
      [{ seed: 1, classes: 1 }, /classes:/],
      [{ seed: 1, classes: 201 }, /classes:/],
      [{ seed: 1, imageSize: 8 }, /imageSize:/],
      [{ seed: 1, partScale: [0.3, 0.1] }, /partScale: min must not exceed max/],
      [{ seed: 1, partScale: [0.1, 0.9] }, /partScale\.1:/],
      [{ seed: 1, backgrounds: 'neon' }, /backgrounds:/],
      [{ seed: 1, colour: 'red' }, /colour: unknown field/],
      [{ seed: 1, classes: 200, partsPerClass: 1 }, /partsPerClass: need at least 2 part types per class/],
      [{ seed: 1, partsPerClass: 100 }, /partsPerClass: Too big/],
      [{ seed: 1, classes: 200, partsPerClass: 1.5 }, /partsPerClass: .*expected int/],
    ];
    for (const [options, pattern] of cases) {
      assert.throws(
        () => parsePartsDatasetOptions(options as PartsDatasetOptions),
        pattern,
        JSON.stringify(options),
      );
    }
    const dir = await tempDir();
    await assert.rejects(generatePartsDataset({ seed: 1, trainPerClass: 0 }, dir), /trainPerClass:/);
    assert.deepEqual(await fs.readdir(dir), []);
  });
});
