import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Backbone } from '../core/backbones/backbone';
import { openBackboneInThread } from '../core/backbones/backbone-thread';
import { openBackbone } from '../core/backbones/registry';
import { extractFeatures } from '../core/features/feature-store';
import { LocalArtifactStore } from '../core/store/local-store';
import { InputError } from '../core/util/errors';
import { writeNoiseDataset } from './support/extraction';
import { convStackModel, seededWeights } from './support/onnx-graph';

const SIDE = 224;
let dir: string;
let file: string;
const opened: Backbone[] = [];

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'backbone-thread-'));
  file = path.join(dir, 'stack.onnx');
  // Enough work per image (three convolutions) that a batch takes a measurable time.
  const { model } = convStackModel({
    side: SIDE,
    stages: [16, 32, 64].map((channels) => ({ channels, stride: 2 })),
    seed: 4,
    output: 'nchw',
  });
  await writeFile(file, model);
});
after(async () => {
  for (const backbone of opened) backbone.dispose();
  await rm(dir, { recursive: true, force: true });
});

const spec = () => ({ name: 'stack', file, preset: 'resnet50' as const, provider: 'cpu' as const });

async function track(opening: Promise<Backbone>): Promise<Backbone> {
  const backbone = await opening;
  opened.push(backbone);
  return backbone;
}

describe('a backbone in its own thread', () => {
  test('describes itself and computes what the same backbone computes here, leaving this thread free', async () => {
    const here = await track(openBackbone(spec()));
    const there = await track(openBackboneInThread(spec()));
    assert.equal(there.fingerprint, here.fingerprint);
    assert.deepEqual(there.featureShape, here.featureShape);
    assert.equal(there.preset, 'resnet50');
    assert.equal(there.inputSize, SIDE);

    const n = 8;
    const images = seededWeights(n * SIDE * SIDE * 3, 9, 2);
    const expected = await here.extract(images, n);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const started = performance.now();
    const features = await there.extract(images, n);
    const elapsed = performance.now() - started;
    clearInterval(timer);
    assert.deepEqual(features, expected);
    // Run here, onnxruntime would hold this thread for the whole batch: no timer could fire.
    assert.ok(ticks >= 2, `${ticks} timer ticks during a ${elapsed.toFixed(0)} ms batch`);
    // The caller's images are still its own (they were copied, not moved).
    assert.equal(images.length, n * SIDE * SIDE * 3);
    // A view of a larger buffer is sent alone, and batches may overlap.
    const [a, b] = await Promise.all([
      there.extract(images.subarray(0, 2 * SIDE * SIDE * 3), 2),
      there.extract(images.subarray(2 * SIDE * SIDE * 3, 4 * SIDE * SIDE * 3), 2),
    ]);
    const item = features.length / n;
    assert.deepEqual(a, expected.subarray(0, 2 * item));
    assert.deepEqual(b, expected.subarray(2 * item, 4 * item));
  });

  test('errors come back with their message and kind; a disposed thread refuses work', async () => {
    const there = await track(openBackboneInThread(spec()));
    await assert.rejects(there.extract(new Float32Array(10), 1), (error: Error) => {
      assert.ok(error.message.includes(file), error.message);
      assert.match(error.message, /expected 1 images of 224x224x3/);
      return true;
    });
    await assert.rejects(
      openBackboneInThread({ name: 'resnet-9000' }),
      (error: Error) => error instanceof InputError && /unknown backbone 'resnet-9000'/.test(error.message),
    );
    await assert.rejects(
      openBackboneInThread({ ...spec(), file: path.join(dir, 'missing.onnx') }),
      /missing\.onnx/,
    );
    there.dispose();
    await assert.rejects(there.extract(new Float32Array(SIDE * SIDE * 3), 1), /disposed/);
  });

  test('disposed while a batch runs (an extraction that failed), it ends after that batch, not the process', () => {
    // Ending the thread inside onnxruntime's run aborted the whole process once the run returned, so a
    // failed extraction took its worker, and the run's dev server was left behind. Hence a child process.
    const script = `
      const { openBackboneInThread } = require(${JSON.stringify(path.join(__dirname, '../core/backbones/backbone-thread.js'))});
      (async () => {
        const backbone = await openBackboneInThread(${JSON.stringify(spec())});
        const n = 8;
        const images = new Float32Array(n * ${SIDE * SIDE * 3});
        const first = backbone.extract(images, n);
        const second = backbone.extract(images, n);
        await first;
        backbone.dispose();
        await second.catch((error) => console.log('second:', error.message));
        setTimeout(() => console.log('still running'), 500);
      })();`;
    const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(child.status, 0, child.stderr);
    assert.equal(child.stdout, 'second: backbone thread disposed\nstill running\n');
  });

  test('extraction stores the same shards from it, one batch computed while the one before is stored', async () => {
    const dataset = await writeNoiseDataset(
      path.join(dir, 'images'),
      Array.from({ length: 7 }, (_, i) => [200 + 20 * i, 260 - 10 * i] as const),
    );
    const here = await track(openBackbone(spec()));
    const there = await track(openBackboneInThread(spec()));
    const extract = (backbone: Backbone, store: string) =>
      extractFeatures({
        store: new LocalArtifactStore(path.join(dir, store)),
        dataset,
        split: 'train',
        backbone,
        shardSize: 3,
        batchSize: 2,
      });
    const direct = await extract(here, 'store-here');
    const threaded = await extract(there, 'store-there');
    assert.equal(threaded.manifest.key, direct.manifest.key);
    assert.deepEqual(
      threaded.manifest.shards.map((s) => s.sha256),
      direct.manifest.shards.map((s) => s.sha256),
    );
  });
});
