import type { PreprocessPreset } from '../data/preprocess';
import { type FeatureSet, itemSize } from '../features/feature-set';
import {
  type ClassKeyChannels,
  explainPrediction,
  KeyChannelTally,
  type PredictionExplanation,
} from './explanation';
import {
  type AnnotatedImage,
  type ConsistencyResult,
  type PartHitOptions,
  PartHitTally,
  PointingGame,
  type PointingResult,
  type PurityResult,
  type PuritySummary,
  prototypePurity,
  type StabilityResult,
  summarisePurity,
} from './faithfulness';
import { classHeatmap } from './maps';
import type { ExplainModel } from './models';
import {
  type ChannelPrototypes,
  findPrototypes,
  type LocatedPrototype,
  locatePrototypes,
  storageBatches,
} from './prototypes';

export interface ExplainedPrototype extends LocatedPrototype {
  /** The training image, relative to the dataset root. */
  path: string;
}

export interface ImageExplanation extends PredictionExplanation<ExplainedPrototype> {
  /** Storage index in the test set. */
  item: number;
  path: string;
  label: number;
  width: number;
  height: number;
  /** Heatmap of the predicted class on the feature grid, [H * W] row-major. */
  heatmap: number[];
}

/** Everything the report shows about one trained head; plain JSON. */
export interface ModelExplanations {
  kind: ExplainModel['kind'];
  grid: { height: number; width: number };
  channels: number;
  /** Indexed by channel. */
  prototypes: ChannelPrototypes<ExplainedPrototype>[];
  keyChannels: ClassKeyChannels[];
  explanations: ImageExplanation[];
  faithfulness: {
    purity: PurityResult;
    /** Purity over the union of every class's key channels. */
    keyChannelPurity: PuritySummary;
    pointing: PointingResult;
    /** Over every class's key channels; null when the test images carry no part annotation. */
    consistency: ConsistencyResult | null;
    /** null without part annotations or without `noisedFeatures`. */
    stability: StabilityResult | null;
  };
}

export interface ExplainModelOptions {
  model: ExplainModel;
  train: FeatureSet;
  test: FeatureSet;
  /** Annotations of the sets' items, in storage order (annotatedImages). */
  trainImages: readonly AnnotatedImage[];
  testImages: readonly AnnotatedImage[];
  /** The backbone's preprocessing, which maps feature cells back to image pixels. */
  preset: PreprocessPreset;
  /** Prototypes per channel (5). */
  prototypes?: number;
  /** Channels per explanation (5). */
  topChannels?: number;
  /** Key channels per class (5). */
  keyChannels?: number;
  /** Test storage indices explained in full; default: the first test image of each class, at most 12. */
  explain?: readonly number[];
  /**
   * Features [H, W, C] of a test image re-extracted under small Gaussian input noise (e.g. the backbone
   * run on addGaussianNoise(input, sigma, seed)); enables the stability metric.
   */
  noisedFeatures?: (image: AnnotatedImage) => Promise<Float32Array>;
  partHits?: PartHitOptions;
  /** Share of a class's images a part must be hit in for a consistent channel (0.8). */
  consistencyThreshold?: number;
  /** Pointing-game tolerance in image pixels (0). */
  pointingTolerance?: number;
  /** Overlap rule of regionHitsPart for purity (0.5). */
  minOverlap?: number;
  batchSize?: number;
  onProgress?: (stage: 'prototypes' | 'test', done: number, total: number) => void;
}

function defaultExplained(images: readonly AnnotatedImage[]): number[] {
  const seen = new Set<number>();
  const chosen: number[] = [];
  for (const image of images) {
    if (seen.has(image.label) || chosen.length >= 12) continue;
    seen.add(image.label);
    chosen.push(image.item);
  }
  return chosen;
}

function checkImages(set: FeatureSet, images: readonly AnnotatedImage[], name: string): void {
  if (images.length !== set.labels.length)
    throw new Error(`${name}: ${images.length} annotated images for ${set.labels.length} feature items`);
  images.forEach((image, i) => {
    if (image.item !== i || image.label !== set.labels[i])
      throw new Error(
        `${name}: annotation ${i} (item ${image.item}, label ${image.label}) does not match the features`,
      );
  });
}

/**
 * Prototypes over the training set, then one streaming pass over the test set for key channels, the
 * pointing game, consistency and stability, and full explanations of a few test images.
 */
export async function explainModel(options: ExplainModelOptions): Promise<ModelExplanations> {
  const { model, train, test, trainImages, testImages, preset } = options;
  checkImages(train, trainImages, 'train');
  checkImages(test, testImages, 'test');
  const { shape } = model;
  const grid = { height: shape.height, width: shape.width };
  const batchSize = options.batchSize ?? 64;

  const cells = await findPrototypes(train, (maps) => model.pool(maps), {
    count: options.prototypes ?? 5,
    batchSize,
    onProgress: (done, total) => options.onProgress?.('prototypes', done, total),
  });
  const prototypes = locatePrototypes(cells, grid, preset, (item) => trainImages[item]!).map(
    ({ channel, prototypes: list }) => ({
      channel,
      prototypes: list.map((p) => ({ ...p, path: trainImages[p.item]!.path })),
    }),
  );

  const keyTally = new KeyChannelTally(model);
  const pointing = new PointingGame(grid, preset, options.pointingTolerance ?? 0);
  const vocabulary = PartHitTally.vocabularyOf(testImages);
  const hits =
    vocabulary.length > 0
      ? new PartHitTally(model.classes, shape.channels, vocabulary, grid, preset, options.partHits)
      : undefined;
  const wanted = new Set(options.explain ?? defaultExplained(testImages));
  const explanations: ImageExplanation[] = [];
  for await (const { maps, first, n } of storageBatches(test, batchSize)) {
    const labels = test.labels.subarray(first, first + n);
    const pooling = await model.pool(maps);
    keyTally.add(pooling.pooled, labels);
    const noisy =
      hits && options.noisedFeatures
        ? await noisyPooling(model, testImages, first, n, options.noisedFeatures)
        : undefined;
    for (let i = 0; i < n; i++) {
      const image = testImages[first + i]!;
      const row = (array: Int32Array) => array.subarray(i * shape.channels, (i + 1) * shape.channels);
      pointing.add(() => classHeatmap(model, maps, i, image.label, pooling), image);
      hits?.add(image, row(pooling.argmax), noisy && row(noisy.argmax));
      if (!wanted.has(first + i)) continue;
      const pooled = pooling.pooled.subarray(i * shape.channels, (i + 1) * shape.channels);
      const explanation = explainPrediction(model, pooled, { top: options.topChannels ?? 5, prototypes });
      const heatmap = classHeatmap(model, maps, i, explanation.predicted, pooling);
      explanations.push({
        ...explanation,
        item: image.item,
        path: image.path,
        label: image.label,
        width: image.width,
        height: image.height,
        heatmap: Array.from(heatmap),
      });
    }
    options.onProgress?.('test', first + n, test.labels.length);
  }

  const keyChannels = keyTally.result(options.keyChannels ?? 5);
  const pairs = keyChannels.flatMap(({ label, channels }) =>
    channels.map(({ channel }) => ({ channel, label })),
  );
  const purity = prototypePurity(prototypes, (item) => trainImages[item]!, {
    minOverlap: options.minOverlap,
  });
  return {
    kind: model.kind,
    grid,
    channels: shape.channels,
    prototypes,
    keyChannels,
    explanations,
    faithfulness: {
      purity,
      keyChannelPurity: summarisePurity(
        purity.perChannel,
        pairs.map((pair) => pair.channel),
      ),
      pointing: pointing.result(),
      consistency: hits ? hits.consistency(pairs, { threshold: options.consistencyThreshold ?? 0.8 }) : null,
      stability: hits ? hits.stability(pairs) : null,
    },
  };
}

/** Pools the noised re-extraction of test images [first, first + n) as one batch. */
async function noisyPooling(
  model: ExplainModel,
  images: readonly AnnotatedImage[],
  first: number,
  n: number,
  noisedFeatures: (image: AnnotatedImage) => Promise<Float32Array>,
) {
  const size = itemSize(model.shape);
  const maps = new Float32Array(n * size);
  for (let i = 0; i < n; i++) {
    const features = await noisedFeatures(images[first + i]!);
    if (features.length !== size)
      throw new Error(
        `noised features of ${images[first + i]!.path} hold ${features.length} values, expected ${size}`,
      );
    maps.set(features, i * size);
  }
  return model.pool(maps);
}
