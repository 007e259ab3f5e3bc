import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import type { Box } from '../core/data/dataset';
import { cropGeometry, PRESETS } from '../core/data/preprocess';
import {
  type AnnotatedImage,
  addGaussianNoise,
  backbonePreset,
  baselineModel,
  baselineModelFromArrays,
  cellBox,
  classHeatmap,
  contributions,
  denseSparseMap,
  explainModel,
  explainPrediction,
  findPrototypes,
  heatmapOnImage,
  heatmapPeak,
  infoDisentModel,
  infoDisentModelFromArrays,
  KeyChannelTally,
  type LocatedPrototype,
  locatePrototypes,
  PartHitTally,
  PointingGame,
  pointHitsPart,
  prototypePurity,
  regionHitsPart,
  sparseMaps,
  stabilityImages,
} from '../core/explain';
import { type FeatureShape, InMemoryFeatureSet, itemSize } from '../core/features/feature-set';
import { BaselineHead } from '../core/method/baseline-head';
import { InfoDisentHead } from '../core/method/infodisent-head';
import { selectBackend } from '../core/tf/backend';
import { SeededRandom } from '../core/util/random';
import { runPythonReference } from './support/python';

before(async () => {
  await selectBackend('wasm');
});

const STRETCH = PRESETS.mobilenet_v2_tfjs;
const GRID7 = { height: 7, width: 7 };

function gaussian(random: SeededRandom, length: number, scale = 1): Float32Array {
  return Float32Array.from({ length }, () => scale * random.normal());
}

function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance: number,
  what: string,
): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    assert.ok(Math.abs(a - e) <= tolerance * (1 + Math.abs(e)), `${what}[${i}]: ${a} vs ${e}`);
  }
}

const sum = (values: ArrayLike<number>): number =>
  Array.prototype.reduce.call(values, (a, b) => a + b, 0) as number;

interface MapsReference {
  pooled: number[];
  argmax: number[];
  argmin: number[];
  sparse_sums: number[];
  logits: number[];
  heatmaps: number[];
  heatmap_positive: number[];
  heatmap_negative: number[];
  cam: number[];
  baseline_logits: number[];
  upsampled: number[];
}

test('sparse maps, contributions and heatmaps of trained-head parameters: identities and NumPy', async () => {
  const random = new SeededRandom(11);
  const shape: FeatureShape = { height: 4, width: 5, channels: 6 };
  const [n, k, c] = [3, 4, shape.channels];
  const maps = gaussian(random, n * itemSize(shape));
  const head = new InfoDisentHead(shape, k, { seed: 1, foldEvery: 0 });
  head.restore({
    rotation: tf.tensor2d(gaussian(random, c * c, 0.4), [c, c]),
    base: tf.eye(c) as tf.Tensor2D,
    baseT: tf.eye(c) as tf.Tensor2D,
    weight: tf.tensor2d(
      Float32Array.from({ length: k * c }, () => random.next()),
      [k, c],
    ),
    bias: tf.tensor2d(gaussian(random, k), [k, 1]),
  });
  const baselineHead = new BaselineHead(shape, k, { seed: 2 });
  baselineHead.restore({
    weight: tf.tensor2d(gaussian(random, k * c), [k, c]),
    bias: tf.tensor2d(gaussian(random, k), [k, 1]),
  });
  const model = await infoDisentModel(head);
  const baseline = await baselineModel(baselineHead);
  const headLogits = await (await head.logits(maps)).data();
  const baselineLogits = await (await baselineHead.logits(maps)).data();
  const pooling = await model.pool(maps);
  head.dispose();
  baselineHead.dispose();
  const plain = await infoDisentModelFromArrays(model).pool(maps);
  assertClose(plain.pooled, pooling.pooled, 1e-5, 'JS pooling vs head pooling');
  assert.deepEqual(plain.argmax, pooling.argmax);
  assert.deepEqual(plain.argmin, pooling.argmin);

  const upsample = { image: 1, class: 2, width: 61, height: 45 };
  const reference = runPythonReference<MapsReference>('explain_reference.py', {
    n,
    h: shape.height,
    w: shape.width,
    c,
    k,
    features: Array.from(maps),
    rotation: Array.from(model.rotation),
    weight: Array.from(model.weights),
    bias: Array.from(model.bias),
    baseline_weight: Array.from(baseline.weights),
    baseline_bias: Array.from(baseline.bias),
    upsample,
  });
  assertClose(pooling.pooled, reference.pooled, 1e-5, 'pooled vs NumPy');
  assert.deepEqual(Array.from(pooling.argmax), reference.argmax);
  assert.deepEqual(Array.from(pooling.argmin), reference.argmin);

  const pixels = shape.height * shape.width;
  let mixedSigns = 0;
  for (let i = 0; i < n; i++) {
    const p = pooling.pooled.subarray(i * c, (i + 1) * c);
    const sparse = sparseMaps(model, maps, pooling, i);
    // Summing S_c over pixels gives p_c.
    const sums = Array.from({ length: c }, (_, ch) => sum(denseSparseMap(sparse, ch)));
    assertClose(sums, p, 1e-5, `sum_ij S_c of image ${i}`);
    assertClose(sums, reference.sparse_sums.slice(i * c, (i + 1) * c), 1e-5, `S sums vs NumPy, image ${i}`);
    const explanation = explainPrediction(model, p);
    assertClose(explanation.logits, headLogits.subarray(i * k, (i + 1) * k), 1e-5, `logits of image ${i}`);
    for (let cls = 0; cls < k; cls++) {
      const logit = headLogits[i * k + cls]!;
      // sum_c a_kc + b_k is the head's logit, and the heatmap sums to sum_c a_kc.
      assert.ok(Math.abs(sum(contributions(model, p, cls)) + model.bias[cls]! - logit) < 1e-4);
      const heatmap = classHeatmap(model, maps, i, cls, pooling);
      const at = (i * k + cls) * pixels;
      assertClose(heatmap, reference.heatmaps.slice(at, at + pixels), 1e-5, `M_${cls} of image ${i}`);
      assert.ok(Math.abs(sum(heatmap) + model.bias[cls]! - logit) < 1e-4);
      const positive = sum(heatmap.filter((v) => v > 0));
      const negative = sum(heatmap.filter((v) => v < 0));
      assertClose(
        [positive, negative],
        [reference.heatmap_positive[i * k + cls]!, reference.heatmap_negative[i * k + cls]!],
        1e-5,
        'heatmap parts',
      );
      if (positive > 0 && negative < 0) mixedSigns++;
      const cam = classHeatmap(baseline, maps, i, cls, await baseline.pool(maps));
      assertClose(cam, reference.cam.slice(at, at + pixels), 1e-5, `CAM_${cls} of image ${i}`);
      assert.ok(Math.abs(sum(cam) / pixels + baseline.bias[cls]! - baselineLogits[i * k + cls]!) < 1e-4);
    }
    assert.equal(explanation.predicted, explanation.logits.indexOf(Math.max(...explanation.logits)));
    assert.ok(
      Math.abs(
        explanation.positiveTotal +
          explanation.negativeTotal +
          explanation.bias -
          Math.max(...explanation.logits),
      ) < 1e-4,
    );
  }
  assert.ok(mixedSigns > 0, 'heatmaps keep both signs');
  assertClose(reference.baseline_logits, baselineLogits, 1e-5, 'baseline logits vs NumPy');

  // Bilinear upsampling to a 61 x 45 image (stretched input) equals Pillow's float resize.
  const grid = { height: shape.height, width: shape.width };
  const at = (upsample.image * k + upsample.class) * pixels;
  const upsampled = heatmapOnImage(
    reference.heatmaps.slice(at, at + pixels),
    grid,
    cropGeometry(upsample.width, upsample.height, STRETCH),
  );
  assertClose(upsampled, reference.upsampled, 1e-5, 'upsampled heatmap vs Pillow');
});

test('heatmaps on images through a centre crop: NaN outside the crop, exact at cell centres, peak location', () => {
  const map = Float32Array.from({ length: 49 }, (_, i) => i - 20);
  map[2 * 7 + 3] = 100;
  // ResNet preset on 896 x 512: resized to 448 x 256 (2 image pixels per resized one), crop at (112, 16).
  const geometry = cropGeometry(896, 512, PRESETS.resnet50);
  assert.deepEqual([geometry.cropLeft, geometry.cropTop, geometry.scaleX], [112, 16, 2]);
  const image = heatmapOnImage(map, GRID7, geometry);
  const at = (x: number, y: number) => image[y * 896 + x]!;
  assert.ok(
    Number.isNaN(at(223, 100)) && Number.isNaN(at(673, 100)) && Number.isNaN(at(400, 31)),
    'outside the crop',
  );
  assert.ok(!Number.isNaN(at(224, 32)) && !Number.isNaN(at(671, 479)), 'inside the crop');
  // Centre of cell (2, 3): crop (112, 80) -> image ((112 + 112) * 2, (80 + 16) * 2) = (448, 192).
  const peak = heatmapPeak(map, GRID7, geometry);
  assert.deepEqual([peak.pixel, peak.value, peak.x, peak.y], [17, 100, 448, 192]);
  // The image pixel whose centre is (448.5, 192.5) is half a crop pixel off the cell centre: nearly the peak.
  assert.ok(Math.abs(at(448, 192) - 100) < 3);
  // Resampled at 7 x 7 over the crop width, output pixel centres fall on cell centres.
  const square = cropGeometry(224, 224, STRETCH);
  assertClose(heatmapOnImage(map, GRID7, square, { width: 7, height: 7 }), map, 1e-6, 'cell centres');
});

/** Pooled values of every item with the brute-force top-k order: value descending, storage index ascending. */
function bruteForceTop(pooled: Float32Array, argmax: Int32Array, channels: number, count: number) {
  const n = pooled.length / channels;
  return Array.from({ length: channels }, (_, channel) => ({
    channel,
    prototypes: Array.from({ length: n }, (_, item) => ({
      item,
      value: pooled[item * channels + channel]!,
      pixel: argmax[item * channels + channel]!,
    }))
      .filter((entry) => entry.value > 0)
      .sort((a, b) => b.value - a.value || a.item - b.item)
      .slice(0, count),
  }));
}

test('top-k prototypes streamed over shards and batches equal a brute-force sort, ties included', async () => {
  const random = new SeededRandom(5);
  const shape: FeatureShape = { height: 3, width: 3, channels: 5 };
  const items = 40;
  // Small integers: mean pooling ties often, and some channels are never positive.
  const maps = Float32Array.from({ length: items * itemSize(shape) }, (_, i) =>
    i % shape.channels === 4 ? -1 : random.int(-1, 2),
  );
  const labels = Int32Array.from({ length: items }, (_, i) => i % 3);
  const set = new InMemoryFeatureSet(shape, 3, labels, maps, 7);
  const k = 3;
  const baseline = baselineModelFromArrays({
    shape,
    weights: new Float32Array(k * 5),
    bias: new Float32Array(k),
  });
  const all = await baseline.pool(maps);
  const expected = bruteForceTop(all.pooled, all.argmax, 5, 5);
  assert.ok(
    expected.some((entry) => new Set(entry.prototypes.map((p) => p.value)).size < entry.prototypes.length),
    'ties occur',
  );
  assert.deepEqual(expected[4]!.prototypes, []);
  assert.deepEqual(await findPrototypes(set, baseline.pool, { count: 5, batchSize: 3 }), expected);

  const gaussianMaps = gaussian(random, items * itemSize(shape));
  const rotation = gaussian(random, 25, 0.5);
  const model = infoDisentModelFromArrays({
    shape,
    weights: new Float32Array(k * 5),
    bias: new Float32Array(k),
    rotation,
  });
  const pooled = await model.pool(gaussianMaps);
  const gaussianSet = new InMemoryFeatureSet(shape, 3, labels, gaussianMaps, 9);
  assert.deepEqual(
    await findPrototypes(gaussianSet, model.pool, { count: 3, batchSize: 4 }),
    bruteForceTop(pooled.pooled, pooled.argmax, 5, 3),
  );
});

test('prototype boxes map feature cells to original image coordinates', () => {
  assert.deepEqual(backbonePreset({ inputSize: 224 }), STRETCH);
  assert.equal(backbonePreset({ inputSize: 224, preset: 'resnet50' }), PRESETS.resnet50);
  assert.deepEqual(
    [backbonePreset({ inputSize: 96 }).resizeTo, backbonePreset({ inputSize: 96 }).cropSize],
    [96, 96],
  );
  // MobileNetV2 (image stretched to 224): a 7x7 cell is 32x32 input pixels, scaled to the image.
  const stretched = cropGeometry(448, 336, STRETCH);
  assert.deepEqual(cellBox(stretched, GRID7, 2 * 7 + 3), { x0: 192, y0: 96, x1: 256, y1: 144 });
  assert.deepEqual(cellBox(cropGeometry(224, 224, STRETCH), GRID7, 2 * 7 + 3), {
    x0: 96,
    y0: 64,
    x1: 128,
    y1: 96,
  });
  // A 72 px square around the peak (Huang et al.), clipped at the crop's corner.
  assert.deepEqual(cellBox(cropGeometry(224, 224, STRETCH), GRID7, 0, 72), { x0: 0, y0: 0, x1: 52, y1: 52 });
  assert.deepEqual(cellBox(stretched, GRID7, 3 * 7 + 3, 72), { x0: 152, y0: 114, x1: 296, y1: 222 });

  // ResNet-50 preset on 500 x 375: resize to 341 x 256, crop 224 at (58, 16) by round-half-even of 58.5.
  const cropped = cropGeometry(500, 375, PRESETS.resnet50);
  const sx = 500 / 341;
  const sy = 375 / 256;
  const located = locatePrototypes(
    [{ channel: 0, prototypes: [{ item: 3, value: 1, pixel: 0 }] }],
    GRID7,
    PRESETS.resnet50,
    () => ({ width: 500, height: 375 }),
  );
  const { row, col, box } = located[0]!.prototypes[0]!;
  assert.deepEqual([row, col], [0, 0]);
  assertClose(
    [box.x0, box.y0, box.x1, box.y1],
    [58 * sx, 16 * sy, 90 * sx, 48 * sy],
    1e-12,
    'cropped cell box',
  );
  assert.deepEqual(cellBox(cropped, GRID7, 0), box);
});

// ---------------------------------------------------------------------------- ground-truth metrics

const cellOf = (row: number, col: number): Box => ({
  x0: col * 32,
  y0: row * 32,
  x1: col * 32 + 32,
  y1: row * 32 + 32,
});

function image(item: number, label: number, parts: AnnotatedImage['parts']): AnnotatedImage {
  return { item, path: `images/${item}.png`, label, width: 224, height: 224, parts };
}

test('purity and the pointing game on a hand-made case', () => {
  const a = (x: number, y: number) => ({ part: 'A', box: { x0: x, y0: y, x1: x + 40, y1: y + 40 } });
  const b = (x: number, y: number) => ({ part: 'B', box: { x0: x, y0: y, x1: x + 40, y1: y + 40 } });
  const images = [
    image(0, 0, [a(0, 0), b(100, 100)]),
    image(1, 0, [a(50, 0), b(0, 100)]),
    image(2, 1, [a(100, 0)]),
  ];
  const proto = (item: number, x: number, y: number): LocatedPrototype => ({
    item,
    value: 1,
    pixel: 0,
    row: 0,
    col: 0,
    box: { x0: x, y0: y, x1: x + 32, y1: y + 32 },
  });
  const purity = prototypePurity(
    [
      { channel: 0, prototypes: [proto(0, 0, 0), proto(1, 50, 0), proto(2, 0, 0)] },
      { channel: 1, prototypes: [proto(0, 100, 100), proto(1, 60, 10)] },
      // Overlap of 10 x 10 with part A: under half of the smaller box, so no hit.
      { channel: 2, prototypes: [proto(0, 30, 30)] },
      { channel: 3, prototypes: [] },
    ],
    (item) => images[item]!,
  );
  assert.deepEqual(
    purity.perChannel.map(({ channel, purity: value, part }) => [channel, value, part]),
    [
      [0, 2 / 3, 'A'],
      [1, 0.5, 'A'],
      [2, 0, null],
    ],
  );
  assert.ok(Math.abs(purity.mean - (2 / 3 + 0.5) / 3) < 1e-12);
  assert.equal(purity.pure, 1);
  assert.equal(purity.channels, 3);

  assert.ok(
    regionHitsPart({ x0: 0, y0: 0, x1: 10, y1: 10 }, { x0: 5, y0: 10, x1: 5, y1: 10 }),
    'keypoint on the edge',
  );
  assert.ok(!regionHitsPart({ x0: 0, y0: 0, x1: 10, y1: 10 }, { x0: 11, y0: 5, x1: 11, y1: 5 }));
  assert.ok(pointHitsPart(176, 80, cellOf(2, 3), 48) && !pointHitsPart(176, 80, cellOf(2, 3), 47.9));

  const game = new PointingGame(GRID7, STRETCH);
  const peakAt = (pixel: number) =>
    Float32Array.from({ length: 49 }, (_, i) => (i === pixel ? 2 : -1 + i / 100));
  const evidence = { part: 'A', box: cellOf(2, 3) };
  const distractor = { part: 'D', box: cellOf(5, 5), distractor: true };
  assert.equal(
    game.add(() => peakAt(2 * 7 + 3), image(0, 0, [evidence, distractor])),
    true,
  );
  assert.equal(
    game.add(() => peakAt(5 * 7 + 5), image(1, 0, [evidence, distractor])),
    false,
    'a distractor is no evidence',
  );
  assert.equal(
    game.add(() => peakAt(0), image(2, 0, [distractor])),
    undefined,
  );
  assert.deepEqual(game.result(), { images: 2, hits: 1, accuracy: 0.5, skipped: 1 });
  const tolerant = new PointingGame(GRID7, STRETCH, 48);
  assert.equal(
    tolerant.add(() => peakAt(2 * 7 + 5), image(0, 0, [evidence])),
    true,
  );
});

test('consistency and stability on a hand-made case', () => {
  const partA = { part: 'A', box: { x0: 30, y0: 30, x1: 66, y1: 66 } };
  const at11 = 1 * 7 + 1;
  const at44 = 4 * 7 + 4;
  const at55 = 5 * 7 + 5;
  // Class 0, five images. Channel 0 peaks on A everywhere; channel 1 on A in 3 images, on D (seen once) in 1.
  const channel1 = [at11, at11, at11, at55, at44];
  const noisy1 = [at11, at44, at44, at55, at44];
  const tallyWith = (partD: AnnotatedImage['parts'][number]) => {
    const tally = new PartHitTally(2, 2, ['A', 'D'], GRID7, STRETCH, { boxSide: 72 });
    for (let i = 0; i < 5; i++) {
      const parts = i === 3 ? [partA, partD] : [partA];
      tally.add(image(i, 0, parts), [at11, channel1[i]!], [at11, noisy1[i]!]);
    }
    tally.add(image(5, 1, [partD]), [at55, at55]);
    return tally;
  };
  const tally = tallyWith({ part: 'D', box: cellOf(5, 5), distractor: true });
  const pairs = [
    { channel: 0, label: 0 },
    { channel: 1, label: 0 },
    { channel: 0, label: 1 },
  ];
  const consistency = tally.consistency(pairs);
  assert.deepEqual(
    consistency.pairs.map(({ score, part, consistent }) => [score, part, consistent]),
    [
      [1, 'A', true],
      // Distractor D scores 1/1 but is visible in 1 of 5 images (< 25%): not counted.
      [0.6, 'A', false],
      [1, 'D', true],
    ],
  );
  assert.equal(consistency.consistency, 2 / 3);
  assert.equal(tally.consistency(pairs, { minVisibleFraction: 0 }).pairs[1]!.part, 'D');
  // An annotated part (a CUB keypoint hidden in most images) counts wherever it is visible, as in
  // Huang et al.: channel 1 hits D in the one image of class 0 that shows it.
  assert.deepEqual(
    tallyWith({ part: 'D', box: cellOf(5, 5) })
      .consistency(pairs)
      .pairs.map(({ score, part, consistent }) => [score, part, consistent]),
    [
      [1, 'A', true],
      [1, 'D', true],
      [1, 'D', true],
    ],
  );
  const stability = tally.stability(pairs)!;
  // Channel 1 moved off A in images 1 and 2; class 1 had no noisy counterpart.
  assert.deepEqual(
    stability.pairs.map(({ images, stability: value }) => [images, value]),
    [
      [5, 1],
      [5, 3 / 5],
      [0, Number.NaN],
    ],
  );
  assert.equal(stability.stability, (1 + 3 / 5) / 2);
  assert.throws(() => tally.add(image(6, 0, [{ part: 'Z', box: cellOf(0, 0) }]), [0, 0]), /vocabulary/);
});

test('input noise for stability is seeded Gaussian of the requested deviation', () => {
  const input = new Float32Array(20000).fill(0.5);
  const noised = addGaussianNoise(input, 0.1, 7);
  assert.deepEqual(noised, addGaussianNoise(input, 0.1, 7));
  assert.notDeepEqual(noised, addGaussianNoise(input, 0.1, 8));
  const deltas = Array.from(noised, (v) => v - 0.5);
  const mean = sum(deltas) / deltas.length;
  const sd = Math.sqrt(sum(deltas.map((d) => (d - mean) ** 2)) / (deltas.length - 1));
  assert.ok(Math.abs(mean) < 0.003 && Math.abs(sd - 0.1) < 0.003, `mean ${mean}, sd ${sd}`);
  assert.equal(input[0], 0.5, 'the input is not modified');
  // One deviation per channel of an interleaved input (a normalised preset divides by each channel's std).
  const perChannel = addGaussianNoise(input, [0.1, 0.3], 7);
  const deviation = (channel: number) => {
    const deltas = Array.from(perChannel, (v) => v - 0.5).filter((_, i) => i % 2 === channel);
    return Math.sqrt(sum(deltas.map((d) => d * d)) / deltas.length);
  };
  assert.ok(Math.abs(deviation(0) - 0.1) < 0.004 && Math.abs(deviation(1) - 0.3) < 0.012);
});

test('key channels rank mean positive contributions per class', () => {
  const model = { weights: Float32Array.from([1, 2, 0, -1, 0, 3]), bias: new Float32Array(2), classes: 2 };
  const tally = new KeyChannelTally(model);
  tally.add(Float32Array.from([1, 1, 5, 2, 0, 1, -4, 1, 1]), [0, 0, 1]);
  // Class 0 (two images): a = [1, 2, 0] and [2, 0, 0] -> means [1.5, 1, 0]; class 1: a = [4, 0, 3].
  assert.deepEqual(tally.result(2), [
    {
      label: 0,
      images: 2,
      channels: [
        { channel: 0, meanContribution: 1.5 },
        { channel: 1, meanContribution: 1 },
      ],
    },
    {
      label: 1,
      images: 1,
      channels: [
        { channel: 0, meanContribution: 4 },
        { channel: 2, meanContribution: 3 },
      ],
    },
  ]);
});

/**
 * Features with known parts: class k's images show part `p<k>` and a distractor `d` in distinct cells of a
 * 7x7 grid; channel j (< K) is 1 at part j's cell, channel K at the distractor, with small noise elsewhere.
 */
function partFeatures(seed: number, classes: number, perClass: number, offset: number) {
  const random = new SeededRandom(seed);
  const shape: FeatureShape = { height: 7, width: 7, channels: classes + 1 };
  const n = classes * perClass;
  const maps = new Float32Array(n * itemSize(shape));
  const images: AnnotatedImage[] = [];
  const cells: number[] = [];
  for (let i = 0; i < n; i++) {
    const label = Math.floor(i / perClass);
    const own = random.int(0, 48);
    let other = random.int(0, 48);
    while (other === own) other = random.int(0, 48);
    for (let at = 0; at < 49 * shape.channels; at++) maps[i * itemSize(shape) + at] = 0.05 * random.next();
    maps[i * itemSize(shape) + own * shape.channels + label] = 1 + random.next();
    maps[i * itemSize(shape) + other * shape.channels + classes] = 1 + random.next();
    const box = (cell: number) => cellOf(Math.floor(cell / 7), cell % 7);
    images.push({
      item: i,
      path: `images/${offset + i}.png`,
      label,
      width: 224,
      height: 224,
      parts: [
        { part: `p${label}`, box: box(own) },
        { part: 'd', box: box(other), distractor: true },
      ],
    });
    cells.push(own);
  }
  const labels = Int32Array.from(images, (entry) => entry.label);
  return { shape, set: new InMemoryFeatureSet(shape, classes, labels, maps, 10), images, maps, cells };
}

test('explainModel on features with known parts: prototypes, key channels, explanations and metrics', async () => {
  const classes = 3;
  const train = partFeatures(1, classes, 8, 0);
  const test_ = partFeatures(2, classes, 4, 100);
  const { shape } = train;
  const c = shape.channels;
  const weights = new Float32Array(classes * c);
  for (let k = 0; k < classes; k++) weights[k * c + k] = 1;
  const rotation = new Float32Array(c * c);
  for (let i = 0; i < c; i++) rotation[i * c + i] = 1;
  const size = itemSize(shape);
  const models = [
    infoDisentModelFromArrays({ shape, weights, bias: new Float32Array(classes), rotation }),
    baselineModelFromArrays({ shape, weights, bias: new Float32Array(classes) }),
  ];
  for (const model of models) {
    const result = await explainModel({
      model,
      train: train.set,
      test: test_.set,
      trainImages: train.images,
      testImages: test_.images,
      preset: STRETCH,
      batchSize: 5,
      // Re-extraction under noise that is too small to move any peak, of every other test image.
      noisedFeatures: async (entry) =>
        entry.item % 2 === 0
          ? test_.maps.slice(entry.item * size, (entry.item + 1) * size).map((v) => v + 0.001)
          : undefined,
    });
    // Channel k's prototypes are the 5 strongest class-k training images, boxed on the part's cell.
    for (let k = 0; k < classes; k++) {
      const { prototypes } = result.prototypes[k]!;
      assert.equal(prototypes.length, 5);
      for (const p of prototypes) {
        assert.equal(train.images[p.item]!.label, k);
        assert.equal(p.pixel, train.cells[p.item]);
        assert.deepEqual(p.box, train.images[p.item]!.parts[0]!.box);
        assert.equal(p.path, `images/${p.item}.png`);
      }
    }
    assert.deepEqual(
      result.keyChannels.map((entry) => entry.channels.map((key) => key.channel)),
      [[0], [1], [2]],
    );
    assert.deepEqual(
      result.explanations.map((entry) => [
        entry.item,
        entry.label,
        entry.predicted,
        entry.channels[0]!.channel,
      ]),
      [
        [0, 0, 0, 0],
        [4, 1, 1, 1],
        [8, 2, 2, 2],
      ],
    );
    const first = result.explanations[0]!;
    assert.equal(first.channels[0]!.prototypes.length, 5);
    assert.equal(first.heatmap.indexOf(Math.max(...first.heatmap)), test_.cells[0]);
    const { purity, keyChannelPurity, pointing, consistency, stability } = result.faithfulness;
    assert.deepEqual(
      purity.perChannel.map((entry) => [entry.purity, entry.part]),
      [
        [1, 'p0'],
        [1, 'p1'],
        [1, 'p2'],
        [1, 'd'],
      ],
    );
    assert.deepEqual(keyChannelPurity, { channels: 3, mean: 1, pure: 3 });
    assert.deepEqual(pointing, { images: 12, hits: 12, accuracy: 1, skipped: 0 });
    assert.equal(consistency!.consistency, 1);
    assert.deepEqual(
      consistency!.pairs.map((pair) => pair.part),
      ['p0', 'p1', 'p2'],
    );
    assert.equal(stability!.stability, 1);
    assert.equal(stability!.images, 6);
    assert.deepEqual(
      stability!.pairs.map((pair) => pair.images),
      [2, 2, 2],
    );
  }
});

test('stability images: annotated test images, the classes in turn, at most the count', () => {
  const part = { part: 'A', box: cellOf(1, 1) };
  const images: AnnotatedImage[] = [
    [0, 0],
    [1, 0],
    [2, 0],
    [3, 1],
    [4, 1],
    [5, 2],
  ].map(([item, label]) => ({
    item: item!,
    path: `${item}.png`,
    label: label!,
    width: 224,
    height: 224,
    parts: item === 3 ? [] : [part],
  }));
  const chosen = (count: number) => stabilityImages(images, count).map((image) => image.item);
  assert.deepEqual(chosen(4), [0, 4, 5, 1]);
  assert.deepEqual(chosen(100), [0, 4, 5, 1, 2]);
  assert.deepEqual(chosen(0), []);
});
