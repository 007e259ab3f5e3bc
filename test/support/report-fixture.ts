import path from 'node:path';
import {
  featureSetBatches,
  HeadAblation,
  pairedComparison,
  rvAllPairs,
  wilsonInterval,
} from '../../core/analysis';
import type { DatasetManifest } from '../../core/data/dataset';
import { generatePartsDataset } from '../../core/data/parts-dataset';
import { PRESETS } from '../../core/data/preprocess';
import {
  type AnnotatedImage,
  annotatedImages,
  baselineModelFromArrays,
  type ExplainModel,
  explainModel,
  infoDisentModelFromArrays,
  logitsOf,
  rotateMaps,
} from '../../core/explain';
import { type FeatureShape, InMemoryFeatureSet, itemSize } from '../../core/features/feature-set';
import type { HeadKind } from '../../core/method/head';
import {
  type ConfigurationSummary,
  classBreakdown,
  headSummary,
  type SweepReport,
  type TrainingSummary,
} from '../../core/report';
import { SeededRandom } from '../../core/util/random';

/** A class name that must come out escaped everywhere it is shown. */
export const HOSTILE_CLASS = '<b>&"x"';

const GRID = 7;

/**
 * Feature maps of generated parts images as a perfectly disentangled backbone would give them: channel
 * j fires at the cell under the centre of every part of type j; small signed noise elsewhere.
 */
function partFeatures(
  images: readonly AnnotatedImage[],
  vocabulary: readonly string[],
  shape: FeatureShape,
  random: SeededRandom,
): InMemoryFeatureSet {
  const size = itemSize(shape);
  const maps = Float32Array.from({ length: images.length * size }, () => 0.05 * random.normal());
  for (const image of images) {
    for (const part of image.parts) {
      const col = Math.min(GRID - 1, Math.floor((((part.box.x0 + part.box.x1) / 2) * GRID) / image.width));
      const row = Math.min(GRID - 1, Math.floor((((part.box.y0 + part.box.y1) / 2) * GRID) / image.height));
      maps[image.item * size + (row * GRID + col) * shape.channels + vocabulary.indexOf(part.part)] =
        1 + random.next();
    }
  }
  const labels = Int32Array.from(images, (image) => image.label);
  return new InMemoryFeatureSet(shape, Math.max(...labels) + 1, labels, maps, 5);
}

async function accuracy(model: ExplainModel, set: InMemoryFeatureSet) {
  let top1 = 0;
  let top5 = 0;
  let start = 0;
  const confusion = Array.from({ length: model.classes }, () => new Array<number>(model.classes).fill(0));
  const predictions: number[] = [];
  for await (const batch of featureSetBatches(set)) {
    const logits = logitsOf(model, (await model.pool(batch.data)).pooled);
    for (let i = 0; i < batch.shape[0]; i++) {
      const row = Array.from(logits.subarray(i * model.classes, (i + 1) * model.classes));
      const rank = row.filter((v) => v > row[set.labels[start + i]!]!).length;
      if (rank === 0) top1++;
      if (rank < 5) top5++;
      const predicted = row.indexOf(Math.max(...row));
      confusion[set.labels[start + i]!]![predicted]!++;
      predictions.push(predicted);
    }
    start += batch.shape[0];
  }
  return { top1: top1 / start, top5: top5 / start, confusion, predictions, count: start, correct: top1 };
}

/** How the sample's heads trained: InfoDisent with a validation split (best at epoch 3, then stopped), the baseline without. */
export const TRAINING: Record<HeadKind, TrainingSummary> = {
  infodisent: {
    steps: 50,
    epochsRun: 5,
    stoppedEarly: true,
    bestEpoch: 2,
    history: [2.3, 1.1, 0.62, 0.55, 0.51].map((meanLoss, epoch) => ({
      epoch,
      meanLoss,
      validationAccuracy: [0.4, 0.7, 0.9, 0.85, 0.8][epoch]!,
    })),
  },
  baseline: {
    steps: 60,
    epochsRun: 6,
    stoppedEarly: false,
    bestEpoch: null,
    history: [1.9, 1.2, 0.9, 0.8, 0.74, 0.7].map((meanLoss, epoch) => ({
      epoch,
      meanLoss,
      validationAccuracy: null,
    })),
  },
};

/**
 * A small sweep report built from a generated parts dataset (written with sharp under `dir`), synthetic
 * part-aligned features, and the real explanation and analysis code: one fully explained configuration,
 * one with results but no explanations, and one failure.
 */
export async function buildSampleReport(
  dir: string,
): Promise<{ report: SweepReport; manifest: DatasetManifest }> {
  const manifest = await generatePartsDataset(
    {
      seed: 7,
      classes: 3,
      trainPerClass: 6,
      testPerClass: 3,
      imageSize: 160,
      partsPerClass: 2,
      distractorsPerImage: 1,
    },
    path.join(dir, 'parts'),
  );
  const trainImages = await annotatedImages(manifest, 'train');
  const testImages = await annotatedImages(manifest, 'test');
  const vocabulary = [
    ...new Set([...trainImages, ...testImages].flatMap((i) => i.parts.map((p) => p.part))),
  ].sort();
  const shape: FeatureShape = { height: GRID, width: GRID, channels: vocabulary.length + 2 };
  const random = new SeededRandom(3);
  const train = partFeatures(trainImages, vocabulary, shape, random);
  const test = partFeatures(testImages, vocabulary, shape, random);
  const k = manifest.classes.length;
  const c = shape.channels;

  const classParts = (label: number) =>
    new Set(
      trainImages
        .filter((i) => i.label === label)
        .flatMap((i) => i.parts.filter((p) => !p.distractor).map((p) => p.part)),
    );
  const infoWeights = new Float32Array(k * c);
  const baseWeights = new Float32Array(k * c);
  for (let label = 0; label < k; label++) {
    const own = classParts(label);
    for (let ch = 0; ch < c; ch++) {
      const evidence = ch < vocabulary.length && own.has(vocabulary[ch]!);
      infoWeights[label * c + ch] = evidence ? 1 + random.next() : 0.05 * random.next();
      baseWeights[label * c + ch] = (evidence ? 1 : 0) + 0.3 * random.normal();
    }
  }
  // A rotation close to the identity (a small Givens turn of two channels), so Z still shows the parts.
  const rotation = new Float32Array(c * c);
  for (let i = 0; i < c; i++) rotation[i * c + i] = 1;
  const angle = 0.2;
  rotation[0] = Math.cos(angle);
  rotation[1] = -Math.sin(angle);
  rotation[c] = Math.sin(angle);
  rotation[c + 1] = Math.cos(angle);
  const models = {
    infodisent: infoDisentModelFromArrays({
      shape,
      weights: infoWeights,
      bias: new Float32Array(k),
      rotation,
    }),
    baseline: baselineModelFromArrays({ shape, weights: baseWeights, bias: new Float32Array(k) }),
  };
  const size = itemSize(shape);
  const n = test.labels.length;
  const testMaps = new Float32Array(n * size);
  let offset = 0;
  for await (const batch of featureSetBatches(test)) {
    testMaps.set(batch.data, offset);
    offset += batch.data.length;
  }
  // The whole test split as one batch: F for the baseline, Z = U F for InfoDisent (what RV and the ablation read).
  const asBatch = (data: Float32Array) => ({ data, shape: [n, GRID, GRID, c] as const, labels: test.labels });
  const heads: ConfigurationSummary['heads'] = {};
  const predictions: Partial<Record<HeadKind, number[]>> = {};
  for (const kind of ['infodisent', 'baseline'] as const) {
    const model = models[kind];
    const noise = new SeededRandom(kind === 'infodisent' ? 1 : 2);
    const explanations = await explainModel({
      model,
      train,
      test,
      trainImages,
      testImages,
      preset: PRESETS.mobilenet_v2_tfjs,
      noisedFeatures: async (image) =>
        testMaps.slice(image.item * size, (image.item + 1) * size).map((v) => v + 0.02 * noise.normal()),
    });
    const batch = asBatch(kind === 'infodisent' ? rotateMaps(rotation, testMaps, shape) : testMaps);
    const ablation = new HeadAblation(model, c);
    ablation.addBatch(batch);
    const evaluation = await accuracy(model, test);
    heads[kind] = {
      ...headSummary({
        evaluation,
        rv: await rvAllPairs([batch]),
        ablation: ablation.result(),
        explanations,
      }),
      // What reports and exports read from the head's stored evaluation.
      classes: classBreakdown(evaluation.confusion),
      top1Interval: wilsonInterval(evaluation.correct, evaluation.count),
      // And from the run's results: InfoDisent held out a validation split and stopped early.
      training: TRAINING[kind],
    };
    predictions[kind] = evaluation.predictions;
  }
  const paired = pairedComparison(Array.from(test.labels), predictions.baseline!, predictions.infodisent!);
  const classes = [HOSTILE_CLASS, 'wagon, "estate" 50%', 'under_score #3'];
  const report: SweepReport = {
    sweep: 'sample',
    generatedAt: '2025-01-01T00:00:00Z',
    description: 'Synthetic features of generated parts images.',
    configurations: [
      {
        configuration: 'parts-synthetic',
        dataset: 'parts_<gen>',
        backbone: 'disentangled & ideal',
        classes,
        channels: c,
        datasetRoot: manifest.root,
        preset: PRESETS.mobilenet_v2_tfjs,
        heads,
        paired,
      },
      {
        configuration: 'parts-accuracy-only',
        dataset: 'parts_<gen>',
        backbone: 'another, "quoted"',
        classes,
        channels: c,
        heads: { infodisent: { top1: 0.5, top5: 1 } },
      },
    ],
    failed: [{ configuration: 'broken', error: 'extraction failed: <no such file>' }],
  };
  return { report, manifest };
}
