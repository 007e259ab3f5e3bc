import assert from 'node:assert/strict';
import { test } from 'node:test';
import { benchAnalyze } from '../bench/analyze';
import {
  ChannelAblation,
  channelsToReach,
  type FeatureBatch,
  featureSetBatches,
  HeadAblation,
  headChannelAblation,
  histogramEdges,
  type LinearHead,
  rvAllPairs,
  rvMeanAuto,
  rvSampledPairs,
  sampleChannelPairs,
} from '../core/analysis';
import { InMemoryFeatureSet } from '../core/features/feature-set';
import { SeededRandom } from '../core/util/random';
import { runPythonReference } from './support/python';

type Shape = [number, number, number, number];

interface Dist {
  values: number[];
  mean: number;
  median: number;
  edges: number[];
  counts: number[];
}

/** Float32 maps, HWC: channels mix a few shared latent maps (so RV varies by pair), ReLU'd, plus an offset. */
function features(
  seed: number,
  shape: Shape,
  options: { offset?: number; relu?: boolean } = {},
): Float32Array {
  const [n, h, w, c] = shape;
  const random = new SeededRandom(seed);
  const latents = 3;
  const mixing = Array.from({ length: c * latents }, () => random.normal());
  const data = new Float32Array(n * h * w * c);
  const latent = new Float64Array(latents);
  for (let pixel = 0; pixel < n * h * w; pixel++) {
    for (let l = 0; l < latents; l++) latent[l] = random.normal();
    for (let ch = 0; ch < c; ch++) {
      let v = 0.5 * random.normal();
      for (let l = 0; l < latents; l++) v += mixing[ch * latents + l]! * latent[l]!;
      data[pixel * c + ch] = (options.relu ? Math.max(0, v) : v) + (options.offset ?? 0);
    }
  }
  return data;
}

/** Copies channel `from` into channel `to` scaled by `scale`, or sets `to` constant when `from` is null. */
function setChannel(data: Float32Array, channels: number, to: number, from: number | null, scale = 1): void {
  for (let at = 0; at < data.length; at += channels) {
    data[at + to] = from === null ? 0.25 : scale * data[at + from]!;
  }
}

function batches(data: Float32Array, shape: Shape, sizes: number[]): FeatureBatch[] {
  const [n, h, w, c] = shape;
  assert.equal(
    sizes.reduce((a, b) => a + b, 0),
    n,
  );
  const perImage = h * w * c;
  let start = 0;
  return sizes.map((size) => {
    const batch: FeatureBatch = {
      data: data.slice(start * perImage, (start + size) * perImage),
      shape: [size, h, w, c],
    };
    start += size;
    return batch;
  });
}

function relativeError(actual: number, expected: number): number {
  return Math.abs(actual - expected) / Math.max(Math.abs(expected), 1e-300);
}

function maxRelativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  assert.equal(actual.length, expected.length);
  let worst = 0;
  for (let k = 0; k < actual.length; k++) worst = Math.max(worst, relativeError(actual[k]!, expected[k]!));
  return worst;
}

function pairList(pairs: Uint32Array): [number, number][] {
  return Array.from({ length: pairs.length / 2 }, (_, k) => [pairs[2 * k]!, pairs[2 * k + 1]!]);
}

const RV_TOLERANCE = 1e-9;

test('RV over all pairs matches the dense NumPy reference (7x7, 14x14, 3x5 maps)', async (t) => {
  const cases: { shape: Shape; offset: number; edit?: (d: Float32Array) => void }[] = [
    { shape: [150, 7, 7, 10], offset: 0 },
    { shape: [40, 14, 14, 4], offset: 0 },
    // Large mean, a constant channel (RV undefined) and a scaled copy (RV 1) on odd-sized maps.
    {
      shape: [30, 3, 5, 6],
      offset: 1000,
      edit: (d) => {
        setChannel(d, 6, 2, null);
        setChannel(d, 6, 5, 0, 2);
      },
    },
  ];
  let worst = 0;
  for (const [index, { shape, offset, edit }] of cases.entries()) {
    const data = features(10 + index, shape, { offset, relu: true });
    edit?.(data);
    const ts = await rvAllPairs(batches(data, shape, [shape[0]]));
    const py = runPythonReference<{ values: (number | null)[]; mean: number; constant_channels: number }>(
      'analysis_reference.py',
      { task: 'rv', shape, features: Array.from(data), pairs: pairList(ts.pairs) },
    );
    assert.equal(ts.mode, 'exact');
    assert.equal(ts.pairsEvaluated, ts.pairsTotal);
    assert.equal(ts.constantChannels, py.constant_channels);
    assert.equal(ts.values.length, py.values.length);
    py.values.forEach((expected, k) => {
      if (expected === null) assert.ok(Number.isNaN(ts.values[k]!), `pair ${k} should be undefined`);
      else worst = Math.max(worst, relativeError(ts.values[k]!, expected));
    });
    assert.ok(relativeError(ts.mean, py.mean) <= RV_TOLERANCE);
    assert.equal(ts.table8x100.mean, 100 * ts.mean);
  }
  t.diagnostic(`max relative RV error vs NumPy: ${worst.toExponential(2)}`);
  assert.ok(worst <= RV_TOLERANCE, `max relative error ${worst}`);
});

test('RV is 1 for identical and scaled channels, undefined for a constant one, small for independent ones', async () => {
  const shape: Shape = [2000, 2, 2, 6];
  const random = new SeededRandom(3);
  const data = Float32Array.from({ length: 2000 * 4 * 6 }, () => random.normal());
  setChannel(data, 6, 1, 0);
  setChannel(data, 6, 2, 0, -4);
  setChannel(data, 6, 3, null);
  const result = await rvAllPairs(batches(data, shape, [2000]));
  const rv = (c: number, d: number) =>
    result.values[pairList(result.pairs).findIndex(([a, b]) => a === c && b === d)]!;
  assert.ok(Math.abs(rv(0, 1) - 1) < 1e-12);
  assert.ok(Math.abs(rv(0, 2) - 1) < 1e-12);
  assert.ok(Math.abs(rv(1, 2) - 1) < 1e-12);
  assert.ok(Number.isNaN(rv(0, 3)));
  assert.equal(result.constantChannels, 1);
  assert.equal(result.pairsDefined, 10);
  // Independent N x P Gaussian maps: RV is about P / N = 0.002.
  for (const [c, d] of [
    [0, 4],
    [0, 5],
    [4, 5],
  ] as const) {
    assert.ok(rv(c, d) < 0.01, `RV(${c}, ${d}) = ${rv(c, d)}`);
  }
});

test('streaming in uneven batches and chunks equals one batch', async (t) => {
  const shape: Shape = [150, 7, 7, 8];
  const data = features(21, shape, { offset: 3, relu: true });
  const whole = await rvAllPairs(batches(data, shape, [150]));
  const uneven = batches(data, shape, [1, 2, 70, 5, 0, 33, 39]);
  async function* asyncSource() {
    yield* uneven;
  }
  for (const streamed of [await rvAllPairs(asyncSource()), await rvAllPairs(uneven, { chunkImages: 7 })]) {
    assert.equal(streamed.images, 150);
    const worst = maxRelativeError(streamed.values, whole.values);
    t.diagnostic(`streamed vs one batch: max relative difference ${worst.toExponential(2)}`);
    assert.ok(worst < 1e-12);
  }
});

test('a stored FeatureSet streams shard by shard into both analyses', async () => {
  const shape: Shape = [30, 2, 3, 5];
  const data = features(4, shape);
  const labels = Int32Array.from({ length: 30 }, (_, i) => i % 3);
  const set = new InMemoryFeatureSet({ height: 2, width: 3, channels: 5 }, 3, labels, data, 7);
  const direct = await rvAllPairs(batches(data, shape, [30]));
  const stored = await rvAllPairs(featureSetBatches(set));
  assert.ok(maxRelativeError(stored.values, direct.values) < 1e-12);
  const head: LinearHead = {
    kind: 'baseline',
    classes: 3,
    weights: Float32Array.from({ length: 15 }, (_, k) => k - 7),
  };
  const ablation = await headChannelAblation(featureSetBatches(set), head);
  const single = new HeadAblation(head, 5);
  single.addBatch({ ...batches(data, shape, [30])[0]!, labels });
  assert.deepEqual(ablation, single.result());
});

test('sampled pairs: distinct, same values as exact, and the 95% CI covers the exact mean', async (t) => {
  const shape: Shape = [200, 3, 3, 40];
  const data = features(5, shape, { relu: true });
  const source = batches(data, shape, [120, 80]);
  const exact = await rvAllPairs(source);
  const sampled = await rvSampledPairs(source, { pairs: 150, seed: 9 });
  assert.equal(sampled.mode, 'sampled');
  assert.equal(sampled.pairsEvaluated, 150);
  const keys = pairList(sampled.pairs).map(([c, d]) => {
    assert.ok(c < d && d < 40);
    return c * 40 + d;
  });
  assert.equal(new Set(keys).size, 150);
  const exactByKey = new Map(pairList(exact.pairs).map(([c, d], k) => [c * 40 + d, exact.values[k]!]));
  assert.ok(
    maxRelativeError(
      sampled.values,
      keys.map((key) => exactByKey.get(key)!),
    ) < 1e-12,
  );
  let covered = 0;
  const draws = 200;
  for (let seed = 0; seed < draws; seed++) {
    const [low, high] = (await rvSampledPairs(source, { pairs: 150, seed })).ci95;
    assert.ok(high > low);
    if (low <= exact.mean && exact.mean <= high) covered++;
  }
  // Binomial(200, 0.95) has sd 1.5%: a calibrated interval lands well inside [0.9, 0.99].
  t.diagnostic(`95% CI coverage of the exact mean over ${draws} seeds: ${covered / draws}`);
  assert.ok(covered / draws >= 0.9 && covered / draws <= 0.99, `coverage ${covered / draws}`);
  assert.deepEqual(exact.ci95, [exact.mean, exact.mean]);
  // Asking for at least every pair is the exact computation.
  const everything = await rvSampledPairs(source, { pairs: 10_000 });
  assert.equal(everything.mode, 'exact');
  assert.equal(everything.mean, exact.mean);
});

test('sampleChannelPairs covers pairs uniformly', () => {
  const hits = new Float64Array(45);
  for (let seed = 0; seed < 400; seed++) {
    for (const [c, d] of pairList(sampleChannelPairs(10, 9, seed))) {
      hits[c * 9 - (c * (c + 1)) / 2 + d - 1]!++;
    }
  }
  // 400 draws of 9 of 45 pairs: 80 expected per pair, sd about 8.
  for (const h of hits) assert.ok(h > 45 && h < 115, `pair drawn ${h} times`);
});

test('rvMeanAuto: exact when cheap, sampled past the threshold; rvAllPairs refuses ImageNet size', async () => {
  const small: Shape = [20, 7, 7, 10];
  const auto = await rvMeanAuto(batches(features(1, small), small, [20]));
  assert.equal(auto.mode, 'exact');
  const wide: Shape = [4, 7, 7, 200];
  const wideData = features(2, wide);
  const sampled = await rvMeanAuto(batches(wideData, wide, [4]), { pairs: 50, seed: 1 });
  assert.equal(sampled.mode, 'sampled');
  assert.equal(sampled.pairsEvaluated, 50);
  const forced = await rvMeanAuto(batches(features(1, small), small, [20]), {
    maxExactElements: 1000,
    pairs: 7,
  });
  assert.equal(forced.pairsEvaluated, 7);
  const imagenet: Shape = [1, 7, 7, 2048];
  await assert.rejects(rvAllPairs(batches(new Float32Array(49 * 2048), imagenet, [1])), /sample fewer pairs/);
});

test('channelsToReach on hand-made contributions', () => {
  assert.deepEqual(channelsToReach([5, 3, 1, 1, -2, 0]), { needed: 4, positive: 4 });
  assert.deepEqual(channelsToReach([0.1, 10, -5]), { needed: 1, positive: 2 });
  // Reaching exactly 95% is enough.
  assert.deepEqual(channelsToReach([1, 19]), { needed: 1, positive: 2 });
  assert.deepEqual(channelsToReach([1, 1, 1, 1]), { needed: 4, positive: 4 });
  assert.deepEqual(channelsToReach([-1, 0, -3]), { needed: 0, positive: 0 });
  assert.deepEqual(channelsToReach([3, 2, 1], 1), { needed: 3, positive: 3 });
  assert.deepEqual(channelsToReach([3, 2, 1], 0.5), { needed: 1, positive: 3 });
});

test('histogram edges: integer bins for small C, 1-2-5 widths up to 64 bins', () => {
  assert.deepEqual(
    histogramEdges(5),
    Array.from({ length: 7 }, (_, i) => i),
  );
  const imagenet = histogramEdges(2048);
  assert.equal(imagenet[1], 50);
  assert.equal(imagenet.at(-1), 2050);
  assert.equal(histogramEdges(512)[1], 10);
  const ablation = new ChannelAblation(3);
  for (const a of [
    [1, 0, 0],
    [1, 1, 0],
    [1, 1, 1],
    [-1, 0, 0],
  ]) {
    ablation.add(a);
  }
  const result = ablation.result();
  assert.deepEqual(Array.from(result.channelsUsed.values), [1, 2, 3, 0]);
  assert.deepEqual(result.channelsUsed.histogram.counts, [1, 1, 1, 1]);
  assert.equal(result.channelsUsed.median, 1.5);
  assert.equal(result.imagesWithoutPositive, 1);
});

function assertDistribution(ts: ReturnType<ChannelAblation['result']>['channelsNeeded'], py: Dist): void {
  assert.deepEqual(Array.from(ts.values), py.values);
  assert.ok(relativeError(ts.mean, py.mean) < 1e-12);
  assert.equal(ts.median, py.median);
  assert.deepEqual(ts.histogram.edges, py.edges);
  assert.deepEqual(ts.histogram.counts, py.counts);
}

test('95%-channel ablation matches NumPy, from contributions and from both heads', () => {
  const random = new SeededRandom(17);
  const contributions = Array.from({ length: 50 }, (_, i) =>
    Array.from({ length: 12 }, () => (i === 0 ? -1 : Math.fround(random.normal() + 0.3))),
  );
  const tally = new ChannelAblation(12);
  for (const a of contributions) tally.add(a);
  const direct = runPythonReference<{ needed: Dist; used: Dist }>('analysis_reference.py', {
    task: 'ablation',
    fraction: 0.95,
    contributions,
  });
  assertDistribution(tally.result().channelsNeeded, direct.needed);
  assertDistribution(tally.result().channelsUsed, direct.used);
  assert.equal(tally.result().imagesWithoutPositive, 1);

  const shape: Shape = [60, 7, 7, 96];
  const data = features(8, shape);
  const classes = 5;
  const labels = Array.from({ length: 60 }, () => random.int(0, classes - 1));
  const heads: LinearHead[] = [
    {
      kind: 'infodisent',
      classes,
      weights: Float32Array.from({ length: classes * 96 }, () => (random.next() < 0.3 ? 0 : random.next())),
    },
    {
      kind: 'baseline',
      classes,
      weights: Float32Array.from({ length: classes * 96 }, () => random.normal()),
    },
  ];
  for (const head of heads) {
    const ablation = new HeadAblation(head, 96);
    const [first, second] = batches(data, shape, [25, 35]);
    ablation.addBatch({ ...first!, labels: labels.slice(0, 25) });
    ablation.addBatch({ ...second!, labels: labels.slice(25) });
    const ts = ablation.result();
    const py = runPythonReference<{ needed: Dist; used: Dist }>('analysis_reference.py', {
      task: 'ablation',
      fraction: 0.95,
      shape,
      features: Array.from(data),
      weights: Array.from(head.weights),
      classes,
      labels,
      head: head.kind,
    });
    assertDistribution(ts.channelsNeeded, py.needed);
    assertDistribution(ts.channelsUsed, py.used);
  }
});

test('InfoDisent head weights must be non-negative', () => {
  const head: LinearHead = { kind: 'infodisent', classes: 1, weights: Float32Array.of(1, -0.5) };
  assert.throws(() => new HeadAblation(head, 2), /non-negative/);
});

test('benchAnalyze streams a small slice and reports finite rows with a NumPy reference', async () => {
  const rows = await benchAnalyze({ scale: 0.002, pairs: 50, referenceImages: 50 });
  for (const row of rows) {
    assert.ok(Number.isFinite(row.value), `${row.case} ${row.metric}`);
    assert.equal(row.ratio, row.reference_value === null ? null : row.value / row.reference_value);
  }
  const throughput = rows.filter((row) => row.metric === 'throughput');
  assert.equal(throughput.length, 2);
  for (const row of throughput) {
    assert.ok(row.reference_value! > 0 && row.case.startsWith('imagenet-val 100x2048x7x7'));
  }
});
