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
import type { ChannelPooling, ExplainModel } from './models';
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

/** One prediction explained: its top channels with their prototypes, and the predicted class's heatmap. */
export interface ExplainedImage extends PredictionExplanation<ExplainedPrototype> {
  /** Original size of the image, which the heatmap is drawn over. */
  width: number;
  height: number;
  /** Heatmap of the predicted class on the feature grid, [H * W] row-major. */
  heatmap: number[];
}

/** An explained test image. */
export interface ImageExplanation extends ExplainedImage {
  /** Storage index in the test set. */
  item: number;
  path: string;
  label: number;
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
   * run on addGaussianNoise(input, sigma, seed)), or undefined for an image left out of the comparison;
   * enables the stability metric.
   */
  noisedFeatures?: (image: AnnotatedImage) => Promise<Float32Array | undefined>;
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
    const images = testImages.slice(first, first + n);
    const noisy =
      hits && options.noisedFeatures ? await noisyArgmax(model, images, options.noisedFeatures) : undefined;
    for (const [i, image] of images.entries()) {
      const argmax = pooling.argmax.subarray(i * shape.channels, (i + 1) * shape.channels);
      pointing.add(() => classHeatmap(model, maps, i, image.label, pooling), image);
      hits?.add(image, argmax, noisy?.[i]);
      if (!wanted.has(first + i)) continue;
      explanations.push({
        ...explainImage(model, maps, pooling, i, image, { top: options.topChannels, prototypes }),
        item: image.item,
        path: image.path,
        label: image.label,
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

/**
 * Explanation of image `index` of a batch of feature maps [n, H, W, C] with its pooling (SPEC section 1):
 * the `top` channels (5) with the largest positive contribution to the predicted class, each with its
 * prototypes, and the predicted class's heatmap. `size` is the image's original size.
 */
export function explainImage(
  model: ExplainModel,
  maps: Float32Array,
  pooling: ChannelPooling,
  index: number,
  size: { width: number; height: number },
  options: { top?: number; prototypes?: readonly ChannelPrototypes<ExplainedPrototype>[] } = {},
): ExplainedImage {
  const { channels } = model.shape;
  const pooled = pooling.pooled.subarray(index * channels, (index + 1) * channels);
  const explanation = explainPrediction(model, pooled, {
    top: options.top ?? 5,
    prototypes: options.prototypes,
  });
  const heatmap = classHeatmap(model, maps, index, explanation.predicted, pooling);
  return { ...explanation, width: size.width, height: size.height, heatmap: Array.from(heatmap) };
}

/**
 * The channels' argmax pixels [C] of each image's noised re-extraction, pooled as one batch; undefined for
 * the images `noisedFeatures` leaves out.
 */
async function noisyArgmax(
  model: ExplainModel,
  images: readonly AnnotatedImage[],
  noisedFeatures: (image: AnnotatedImage) => Promise<Float32Array | undefined>,
): Promise<(Int32Array | undefined)[]> {
  const size = itemSize(model.shape);
  const features: (Float32Array | undefined)[] = [];
  for (const image of images) {
    const noised = await noisedFeatures(image);
    if (noised && noised.length !== size)
      throw new Error(`noised features of ${image.path} hold ${noised.length} values, expected ${size}`);
    features.push(noised);
  }
  const present = features.filter((entry): entry is Float32Array => entry !== undefined);
  if (present.length === 0) return features.map(() => undefined);
  const maps = new Float32Array(present.length * size);
  present.forEach((entry, j) => {
    maps.set(entry, j * size);
  });
  const { argmax, channels } = await model.pool(maps);
  let next = 0;
  return features.map((entry) => {
    if (!entry) return undefined;
    const j = next++;
    return argmax.subarray(j * channels, (j + 1) * channels);
  });
}

/** A head's faithfulness metrics as single numbers: fractions in [0, 1], null where not measured. */
export interface FaithfulnessFigures {
  /** Mean prototype purity over channels, and the channels with purity > 0.5. */
  purity: number | null;
  pureChannels: number;
  keyChannelPurity: number | null;
  pointing: number | null;
  consistency: number | null;
  stability: number | null;
  /** Test images compared under input noise (0 when stability was not measured). */
  stabilityImages: number;
}

const measured = (value: number | undefined): number | null =>
  value === undefined || !Number.isFinite(value) ? null : value;

export function faithfulnessFigures(faithfulness: ModelExplanations['faithfulness']): FaithfulnessFigures {
  const { purity, keyChannelPurity, pointing, consistency, stability } = faithfulness;
  return {
    purity: measured(purity.mean),
    pureChannels: purity.pure,
    keyChannelPurity: measured(keyChannelPurity.mean),
    pointing: measured(pointing.accuracy),
    consistency: measured(consistency?.consistency),
    stability: measured(stability?.stability),
    stabilityImages: stability?.images ?? 0,
  };
}
