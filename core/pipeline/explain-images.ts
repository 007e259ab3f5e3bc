import { existsSync } from 'node:fs';
import type { Backbone } from '../backbones/backbone';
import { openBackbone } from '../backbones/registry';
import type { Configuration } from '../config/experiment';
import type { DatasetManifest } from '../data/dataset';
import { decodeRgb, type PreprocessPreset } from '../data/preprocess';
import {
  backbonePreset,
  baselineModel,
  type ExplainedImage,
  explainImage,
  infoDisentModel,
  type ModelExplanations,
} from '../explain';
import { itemSize } from '../features/feature-set';
import { featureCacheKey, imageFileFeatures, StoredFeatureSet } from '../features/feature-store';
import type { BaselineHead } from '../method/baseline-head';
import type { HeadKind } from '../method/head';
import { InfoDisentHead } from '../method/infodisent-head';
import type { ConfigurationSummary } from '../report/summary';
import { getJson } from '../store/artifact-store';
import { BACKENDS, type BackendName } from '../tf/backend';
import { InputError } from '../util/errors';
import {
  configurationSummaryKey,
  featureSettings,
  loadTrainedHead,
  prepareDataset,
  readDatasetManifest,
  type StageContext,
  trainedHeadKey,
  useBackend,
} from './stages';

/** The store lacks what explaining needs (features, a trained head, the explain stage's summary). */
export class NotTrainedError extends Error {
  override readonly name = 'NotTrainedError';
}

export interface ExplainedFile extends ExplainedImage {
  /** The image file as given. */
  file: string;
}

export interface FileExplanations {
  configuration: string;
  head: HeadKind;
  /** Store key of the trained head. */
  headKey: string;
  classes: string[];
  /** Folder the prototypes' paths are relative to (the dataset on this machine). */
  datasetRoot: string;
  preset: PreprocessPreset;
  grid: ModelExplanations['grid'];
  images: ExplainedFile[];
}

/** Each file's original size, decoding it whole: a missing or corrupt file fails here, named, before any model loads. */
async function readImageSizes(files: readonly string[]): Promise<{ width: number; height: number }[]> {
  const sizes = [];
  for (const file of files) {
    if (!existsSync(file)) throw new InputError(`${file}: no such image file`);
    const { width, height } = await decodeRgb(file);
    sizes.push({ width, height });
  }
  return sizes;
}

/**
 * The stored trained head of `kind` on these features: its key for the backend this process runs, else for
 * any other backend (a configuration on 'auto' may have been trained on a worker with another backend).
 */
async function findTrainedHead(
  context: StageContext,
  configuration: Configuration,
  kind: HeadKind,
  featuresKey: string,
  backend: BackendName,
): Promise<string | undefined> {
  for (const candidate of [backend, ...BACKENDS.filter((other) => other !== backend)]) {
    const key = trainedHeadKey(configuration, kind, featuresKey, candidate);
    if (await context.store.exists(`${key}/head.bin`)) return key;
  }
  return undefined;
}

/** The stored train and test feature keys of the configuration; NotTrainedError when either is missing. */
async function storedFeatureKeys(
  context: StageContext,
  configuration: Configuration,
  manifest: DatasetManifest,
  backbone: Backbone,
): Promise<{ train: string; test: string }> {
  const settings = featureSettings(configuration);
  const keys = {
    train: featureCacheKey(manifest, 'train', backbone, settings),
    test: featureCacheKey(manifest, 'test', backbone, settings),
  };
  for (const [split, key] of Object.entries(keys)) {
    if (!(await context.store.exists(`${key}/manifest.json`)))
      throw new NotTrainedError(
        `no ${split} features of configuration '${configuration.name}' in ${context.store.location}`,
      );
  }
  return keys;
}

/**
 * Explains image files with a trained head of the configuration, found in the store by content as the
 * pipeline keyed it: the backbone runs on each image with the extraction's preprocessing, and each top
 * channel is shown by the prototypes the explain stage found over the training set.
 */
export async function explainImageFiles(
  context: StageContext,
  configuration: Configuration,
  files: readonly string[],
  options: { head: HeadKind; top?: number },
): Promise<FileExplanations> {
  const sizes = await readImageSizes(files);
  const backend = await useBackend(context, configuration);
  const manifest = await readDatasetManifest(await prepareDataset(context, configuration));
  const backbone = await openBackbone(configuration.backbone);
  try {
    const features = await storedFeatureKeys(context, configuration, manifest, backbone);
    const headKeys: Partial<Record<HeadKind, string>> = {};
    for (const kind of ['baseline', 'infodisent'] as const) {
      const key = await findTrainedHead(context, configuration, kind, features.train, backend);
      if (key) headKeys[kind] = key;
    }
    const headKey = headKeys[options.head];
    if (!headKey)
      throw new NotTrainedError(
        `no trained ${options.head} head of configuration '${configuration.name}' in ${context.store.location}`,
      );
    const summary = await getJson<ConfigurationSummary>(
      context.store,
      configurationSummaryKey(configuration, headKeys, features.test),
    );
    const prototypes = summary?.heads[options.head]?.explanations?.prototypes;
    if (!prototypes)
      throw new NotTrainedError(
        `no prototypes of the ${options.head} head of configuration '${configuration.name}' in ${context.store.location} (its explain stage has not run)`,
      );

    const trainSet = await StoredFeatureSet.open(context.store, features.train);
    const head = await loadTrainedHead(
      context,
      configuration,
      { kind: options.head, key: headKey },
      trainSet,
    );
    try {
      const model =
        head instanceof InfoDisentHead
          ? await infoDisentModel(head)
          : await baselineModel(head as BaselineHead);
      const images: ExplainedFile[] = [];
      for await (const { start, features: maps } of imageFileFeatures(backbone, files)) {
        const pooling = await model.pool(maps);
        for (let i = 0; i < maps.length / itemSize(model.shape); i++) {
          images.push({
            file: files[start + i]!,
            ...explainImage(model, maps, pooling, i, sizes[start + i]!, { top: options.top, prototypes }),
          });
        }
      }
      return {
        configuration: configuration.name,
        head: options.head,
        headKey,
        classes: manifest.classes,
        datasetRoot: manifest.root,
        preset: backbonePreset(backbone),
        grid: { height: model.shape.height, width: model.shape.width },
        images,
      };
    } finally {
      head.dispose();
    }
  } finally {
    backbone.dispose();
  }
}
