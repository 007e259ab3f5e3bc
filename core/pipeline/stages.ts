import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  featureSetBatches,
  HeadAblation,
  type LabelledFeatureBatch,
  RvAccumulator,
  sampleChannelPairs,
} from '../analysis';
import { openBackboneInThread } from '../backbones/backbone-thread';
import { openBackbone } from '../backbones/registry';
import type { BaselineHeadConfig, Configuration, InfoDisentHeadConfig } from '../config/experiment';
import type { DatasetManifest, Split } from '../data/dataset';
import { loadDataset, type SkippedInput } from '../data/loaders';
import { generatePartsDataset } from '../data/parts-dataset';
import { PRESETS } from '../data/preprocess';
import {
  type AnnotatedImage,
  addGaussianNoise,
  annotatedImages,
  backbonePreset,
  baselineModel,
  explainModel,
  type FaithfulnessFigures,
  faithfulnessFigures,
  infoDisentModel,
  stabilityImages,
} from '../explain';
import { extractFeaturesInProcesses } from '../features/extract-processes';
import type { FeatureShape } from '../features/feature-set';
import { itemSize } from '../features/feature-set';
import {
  type ExtractionProgress,
  type ExtractionResult,
  extractFeatures,
  type FeatureSettings,
  imageFileFeatures,
  StoredFeatureSet,
  skippedImages,
} from '../features/feature-store';
import { checkSetFitsHead, describeShape, FeatureInputError } from '../features/feature-validation';
import type { ParameterGroup } from '../method/adam';
import { BaselineHead } from '../method/baseline-head';
import { type Evaluation, evaluateHead } from '../method/evaluate';
import type { Head, HeadKind } from '../method/head';
import { InfoDisentHead } from '../method/infodisent-head';
import { decodeTensors, encodeTensors } from '../method/tensor-io';
import { type TrainResult, trainHead } from '../method/train';
import {
  type ConfigurationSummary,
  computeEntries,
  headSummary,
  resultsHistory,
  type SweepReport,
  trainingSummaries,
  writeHtmlReport,
} from '../report';
import { type ArtifactStore, getJson, putJson } from '../store/artifact-store';
import { type BackendChoice, type BackendName, selectBackend, tfjsRuntime } from '../tf/backend';
import { type ComputeRecord, computeRecord } from '../util/compute-record';
import { contentKey } from '../util/hash';
import { sincePreviousRun } from './compare';
import { readConfigurationSummaries, reportPrefix, sweepRuns } from './results';

/** What every stage needs: where artifacts go, where local data lives, and a progress sink. */
export interface StageContext {
  store: ArtifactStore;
  /** The store's URL, for processes a stage starts (features.processes) to open it again. */
  storeUrl?: string;
  /** The worker's backend: used where a configuration leaves its backend on 'auto'. */
  backend?: BackendChoice;
  /** Local folder for generated datasets. */
  dataDir: string;
  progress?: (stage: string, done: number, total: number, detail?: string) => void | Promise<void>;
}

export interface DatasetRef {
  name: string;
  /** Absolute path of the dataset's manifest.json on the worker's disk. */
  manifestPath: string;
  classes: string[];
  counts: Record<Split, number>;
  /** Files left out in skip mode, with the reason, reported with the results: the first SKIPPED_CARRIED. */
  skipped: SkippedInput[];
  /** How many were left out (absent in results from before it was counted: then all are listed). */
  skippedCount?: number;
}

/**
 * Skipped files a stage's result lists: the results and workflow histories carry them, and a tree of
 * thousands of unreadable files would otherwise outgrow the payloads Temporal takes (2 MB).
 */
const SKIPPED_CARRIED = 50;

/** The first SKIPPED_CARRIED of `skipped`, and their count. */
function carriedSkipped(skipped: readonly SkippedInput[]): { skipped: SkippedInput[]; skippedCount: number } {
  return { skipped: skipped.slice(0, SKIPPED_CARRIED), skippedCount: skipped.length };
}

/** The configuration's backend, or the worker's where the configuration says 'auto'. */
export function useBackend(context: StageContext, configuration: Configuration): Promise<BackendName> {
  return selectBackend(
    configuration.backend === 'auto' ? (context.backend ?? 'auto') : configuration.backend,
  );
}

export async function readDatasetManifest(ref: Pick<DatasetRef, 'manifestPath'>): Promise<DatasetManifest> {
  return JSON.parse(await readFile(ref.manifestPath, 'utf8')) as DatasetManifest;
}

/**
 * Generates the configuration's parts dataset on the local disk, or reads a user's dataset in its
 * official layout; either way a manifest.json lands under the data folder for the other stages.
 */
export async function prepareDataset(
  context: StageContext,
  configuration: Configuration,
): Promise<DatasetRef> {
  return (await prepareDatasetManifest(context, configuration)).dataset;
}

/** prepareDataset, with the manifest it wrote for a caller in the same process (not a workflow payload). */
export async function prepareDatasetManifest(
  context: StageContext,
  configuration: Configuration,
): Promise<{ dataset: DatasetRef; manifest: DatasetManifest }> {
  const { dataset } = configuration;
  let manifest: DatasetManifest;
  let manifestPath: string;
  let skipped: SkippedInput[] = [];
  if (dataset.kind === 'parts') {
    const folder = path.join(context.dataDir, `${dataset.name}-${contentKey(dataset.generator)}`);
    const generated = await generatePartsDataset(dataset.generator, folder, (done, total) =>
      context.progress?.('dataset', done, total),
    );
    // The configuration names the dataset (tables group rows by it); the generator's folder just says 'parts'.
    manifest = { ...generated, name: dataset.name };
    manifestPath = path.join(folder, 'manifest.json');
  } else {
    const loaded = await loadDataset(dataset.kind, dataset.root, {
      skipInvalid: dataset.skipInvalid,
      name: dataset.name,
      ...(dataset.kind === 'class-folders' ? { testFraction: dataset.testFraction } : {}),
    });
    manifest = loaded.manifest;
    skipped = loaded.skipped;
    manifestPath = path.join(
      context.dataDir,
      'manifests',
      `${dataset.name}-${contentKey(manifest.items)}.json`,
    );
    await mkdir(path.dirname(manifestPath), { recursive: true });
    await writeFile(`${manifestPath}.tmp`, JSON.stringify(manifest));
    await rename(`${manifestPath}.tmp`, manifestPath);
  }
  const count = (split: Split) => manifest.items.filter((item) => item.split === split).length;
  return {
    dataset: {
      name: manifest.name,
      manifestPath,
      classes: manifest.classes,
      counts: { train: count('train'), test: count('test') },
      ...carriedSkipped(skipped),
    },
    manifest,
  };
}

/** The dataset's manifest on this worker. Another worker may have prepared it: a generated one is regenerated here from its seed. */
async function localDatasetManifest(
  context: StageContext,
  configuration: Configuration,
  dataset: DatasetRef,
): Promise<DatasetManifest> {
  return readDatasetManifest(
    existsSync(dataset.manifestPath) ? dataset : await prepareDataset(context, configuration),
  );
}

export interface FeaturesRef {
  key: string;
  split: Split;
  count: number;
  reused: boolean;
  reusedShards: number;
  shape: { height: number; width: number; channels: number };
  /**
   * Images the extraction left out as unreadable (dataset.skipInvalid): the first SKIPPED_CARRIED, and how many.
   * Absent in results from before it could.
   */
  skipped?: SkippedInput[];
  skippedCount?: number;
  /** What extracting the set took (its manifest's record; absent for sets from before it was kept). */
  compute?: ComputeRecord;
}

/** How the configuration stores its features: its dtype, and whether unreadable images are skipped (skipInvalid). */
export function featureSettings(configuration: Configuration): Required<FeatureSettings> {
  const { dataset } = configuration;
  return {
    dtype: configuration.features.dtype,
    skipUnreadable: dataset.kind !== 'parts' && dataset.skipInvalid,
  };
}

export async function extractSplit(
  context: StageContext,
  configuration: Configuration,
  dataset: DatasetRef,
  split: Split,
): Promise<FeaturesRef> {
  await useBackend(context, configuration);
  const manifest = await localDatasetManifest(context, configuration, dataset);
  const { batchSize, processes } = configuration.features;
  const settings = featureSettings(configuration);
  const onProgress = ({ done, total }: ExtractionProgress) =>
    context.progress?.(`extract ${split}`, done, total);
  let result: ExtractionResult;
  if (processes > 1) {
    if (!context.storeUrl)
      throw new Error(`features.processes = ${processes}: this stage was given no store URL to share`);
    result = await extractFeaturesInProcesses({
      store: context.store,
      storeUrl: context.storeUrl,
      dataset: manifest,
      split,
      backbone: configuration.backbone,
      ...settings,
      batchSize,
      processes,
      onProgress,
    });
  } else {
    // In its own thread: this one stores each batch while the backbone computes the next.
    const backbone = await openBackboneInThread(configuration.backbone);
    try {
      result = await extractFeatures({
        store: context.store,
        dataset: manifest,
        split,
        backbone,
        ...settings,
        batchSize,
        onProgress,
      });
    } finally {
      backbone.dispose();
    }
  }
  return {
    key: result.manifest.key,
    split,
    count: result.manifest.count,
    reused: result.reused,
    reusedShards: result.reusedShards,
    shape: result.manifest.shape,
    ...carriedSkipped(skippedImages(result.manifest)),
    ...(result.manifest.compute ? { compute: result.manifest.compute } : {}),
  };
}

function createHead(kind: HeadKind, set: StoredFeatureSet, configuration: Configuration): Head {
  if (kind === 'baseline') return new BaselineHead(set.shape, set.classCount, { seed: configuration.seed });
  return new InfoDisentHead(set.shape, set.classCount, {
    seed: configuration.seed,
    foldEvery: configuration.heads.infodisent.foldEvery,
  });
}

function parameterGroups(kind: HeadKind, configuration: Configuration): Record<string, ParameterGroup> {
  const head: BaselineHeadConfig | InfoDisentHeadConfig = configuration.heads[kind];
  return 'rotation' in head
    ? { rotation: head.rotation, weight: head.weight, bias: head.bias }
    : { weight: head.weight, bias: head.bias };
}

/** Where a head trained on `featuresKey` with the configuration's settings on `backend` is stored. */
export function trainedHeadKey(
  configuration: Configuration,
  kind: HeadKind,
  featuresKey: string,
  backend: BackendName,
): string {
  const settings = configuration.heads[kind];
  return `heads/${kind}/${contentKey({ features: featuresKey, settings, seed: configuration.seed, backend })}`;
}

export interface TrainedHeadRef {
  kind: HeadKind;
  key: string;
  backend: BackendName;
  reused: boolean;
  result: TrainResult;
  /** What training the head took, and on what (absent for heads trained before it was kept). */
  compute?: ComputeRecord;
}

/**
 * Trains one head on the training features. Content-addressed: the same features, head settings,
 * seed and backend give the same key, and a finished head is reused. Checkpoints go next to it.
 */
export async function trainHeadStage(
  context: StageContext,
  configuration: Configuration,
  kind: HeadKind,
  features: FeaturesRef,
): Promise<TrainedHeadRef> {
  const backend = await useBackend(context, configuration);
  const settings = configuration.heads[kind];
  const key = trainedHeadKey(configuration, kind, features.key, backend);
  const finished = await context.store.get(`${key}/head.bin`);
  if (finished) {
    const { meta, tensors } = decodeTensors(finished, `${context.store.location}/${key}/head.bin`);
    tf.dispose(Object.values(tensors));
    const { result, compute } = meta as { result: TrainResult; compute?: ComputeRecord };
    return { kind, key, backend, reused: true, result, ...(compute ? { compute } : {}) };
  }
  const set = await StoredFeatureSet.open(context.store, features.key);
  const head = createHead(kind, set, configuration);
  // The trainer reads losses back only now and then: show the latest between reads.
  let lossDetail: string | undefined;
  try {
    const result = await trainHead(
      head,
      set,
      {
        epochs: settings.epochs,
        batchSize: settings.batchSize,
        seed: configuration.seed,
        groups: parameterGroups(kind, configuration),
        schedule: settings.schedule,
        validationFraction: settings.validationFraction,
        patience: settings.patience,
        checkpointEvery: settings.checkpointEvery,
      },
      {
        onProgress: ({ step, totalSteps, loss }) => {
          if (loss !== null) lossDetail = `loss ${loss.toFixed(3)}`;
          return context.progress?.(`train ${kind}`, step, totalSteps, lossDetail);
        },
        checkpoint: {
          name: `${context.store.location}/${key}/checkpoint.bin`,
          load: () => context.store.get(`${key}/checkpoint.bin`),
          save: (data) => context.store.put(`${key}/checkpoint.bin`, data),
        },
      },
    );
    // trainHead always counts its seconds; only results stored before lack them.
    const compute = computeRecord(tfjsRuntime(), result.seconds ?? 0, result.steps);
    await context.store.put(
      `${key}/head.bin`,
      await encodeTensors(head.state(), {
        kind,
        backend,
        result,
        compute,
        features: features.key,
        shape: set.shape,
        classCount: set.classCount,
      }),
    );
    await context.store.delete(`${key}/checkpoint.bin`);
    return { kind, key, backend, reused: false, result, compute };
  } finally {
    head.dispose();
  }
}

/**
 * Restores a trained head from the store to score `set`; fails with a FeatureInputError where the set's
 * maps or classes are not those the head was trained on (another backbone, input size or dataset).
 */
export async function loadTrainedHead(
  context: StageContext,
  configuration: Configuration,
  trained: Pick<TrainedHeadRef, 'kind' | 'key'>,
  set: StoredFeatureSet,
): Promise<Head> {
  const data = await context.store.get(`${trained.key}/head.bin`);
  if (!data) throw new Error(`trained head '${trained.key}' is not in ${context.store.location}`);
  const { meta, tensors } = decodeTensors(data, `${context.store.location}/${trained.key}/head.bin`);
  const head = createHead(trained.kind, set, configuration);
  try {
    // Heads saved before their meta recorded the geometry are checked by their tensors' shapes alone.
    const trainedOn = meta as { shape?: FeatureShape; classCount?: number };
    if (trainedOn.shape && trainedOn.classCount !== undefined)
      checkSetFitsHead(set, { shape: trainedOn.shape, classCount: trainedOn.classCount });
    for (const [name, expected] of Object.entries(head.state())) {
      const stored = tensors[name];
      if (stored && !tf.util.arraysEqual(stored.shape, expected.shape))
        throw new FeatureInputError(
          set.name,
          {},
          `shape of tensor '${name}' in trained head '${trained.key}'`,
          `[${stored.shape.join(', ')}]`,
          `but ${describeShape(set.shape)} maps of ${set.classCount} classes need [${expected.shape.join(', ')}]`,
        );
    }
  } catch (error) {
    tf.dispose(Object.values(tensors));
    head.dispose();
    throw error;
  }
  head.restore(tensors);
  return head;
}

/**
 * What an evaluation passes on: its accuracies, and the store key of the whole evaluation with its
 * per-class accuracies and confusion counts, which stay out of workflow payloads (ImageNet's 1000 x 1000
 * confusion matrix alone exceeds Temporal's 2 MB payload limit).
 */
export interface EvaluationSummary {
  count: number;
  top1: number;
  top5: number;
  detailsKey: string;
}

export async function evaluateStage(
  context: StageContext,
  configuration: Configuration,
  trained: TrainedHeadRef,
  test: FeaturesRef,
): Promise<EvaluationSummary> {
  const key = `${trained.key}/evaluation-${contentKey(test.key)}.json`;
  const summary = ({ count, top1, top5 }: Evaluation): EvaluationSummary => ({
    count,
    top1,
    top5,
    detailsKey: key,
  });
  const cached = await getJson<Evaluation>(context.store, key);
  // One stored before predictions were kept is done again, so that the report can pair the heads.
  if (cached?.predictions) return summary(cached);
  await useBackend(context, configuration);
  const set = await StoredFeatureSet.open(context.store, test.key);
  const head = await loadTrainedHead(context, configuration, trained, set);
  try {
    const evaluation = await evaluateHead(head, set);
    await putJson(context.store, key, evaluation);
    return summary(evaluation);
  } finally {
    head.dispose();
  }
}

/** Test feature batches as the analyses take them, rotated by U (given as U^T) where there is one. */
async function* analysedBatches(
  set: StoredFeatureSet,
  rotationT?: tf.Tensor2D,
): AsyncGenerator<LabelledFeatureBatch> {
  for await (const batch of featureSetBatches(set)) {
    if (!rotationT) {
      yield batch;
      continue;
    }
    const [n, height, width, channels] = batch.shape;
    const rotated = tf.tidy(() =>
      tf.matMul(tf.tensor2d(batch.data, [n * height * width, channels]), rotationT),
    );
    const data = (await rotated.data()) as Float32Array;
    rotated.dispose();
    yield { ...batch, data };
  }
}

/** Where the explain stage keeps a configuration's summary: addressed by its heads, test features and settings. */
export function configurationSummaryKey(
  configuration: Configuration,
  headKeys: Partial<Record<HeadKind, string>>,
  testKey: string,
): string {
  return `summaries/${configuration.name}-${contentKey({ heads: headKeys, test: testKey, explain: configuration.explain })}.json`;
}

/**
 * One head's part of an explain stage's summary, stored as soon as it is done: explaining a head reads the
 * whole training set's features, so a stage cut off (a lost worker) resumes from the heads it finished.
 * Deleted once the summary is written.
 */
interface ExplainedHead {
  summary: NonNullable<ConfigurationSummary['heads'][HeadKind]>;
  /** What explaining it took, added to the stage's compute record. */
  seconds: number;
}

/** Where a summary's head part lies until the summary is written: `summaries/<name>.<kind>.part.json`. */
export function explainedHeadKey(summaryKey: string, kind: HeadKind): string {
  return summaryKey.replace(/\.json$/, `.${kind}.part.json`);
}

export interface ExplainStageResult {
  summaryKey: string;
  /** Purity, pointing game, consistency and stability of each explained head, for the sweep's results. */
  faithfulness: Partial<Record<HeadKind, FaithfulnessFigures>>;
  /** What the stage took, kept in the summary (absent for summaries from before it was kept). */
  compute?: ComputeRecord;
}

function faithfulnessOf(summary: ConfigurationSummary): ExplainStageResult['faithfulness'] {
  const figures: ExplainStageResult['faithfulness'] = {};
  for (const kind of ['infodisent', 'baseline'] as const) {
    const explanations = summary.heads[kind]?.explanations;
    if (explanations) figures[kind] = faithfulnessFigures(explanations.faithfulness);
  }
  return figures;
}

/**
 * Stability's input (SPEC section 6): a few test images, spread over the classes, re-extracted by the
 * backbone under seeded Gaussian pixel noise; by test storage index. Both heads are compared on them.
 */
async function noisedTestFeatures(
  context: StageContext,
  configuration: Configuration,
  manifest: DatasetManifest,
  testImages: readonly AnnotatedImage[],
): Promise<Map<number, Float32Array>> {
  const { stabilityImages: count, stabilityNoise: sigma } = configuration.explain;
  const chosen = stabilityImages(testImages, count);
  const noised = new Map<number, Float32Array>();
  if (chosen.length === 0) return noised;
  const backbone = await openBackbone(configuration.backbone);
  try {
    // The noise is in pixel units of [0, 1]; a preset feeds the network (x - mean) / std.
    const deviation = backbone.preset ? PRESETS[backbone.preset].std.map((std) => sigma / std) : sigma;
    const size = itemSize(backbone.featureShape);
    const batches = imageFileFeatures(
      backbone,
      chosen.map((image) => path.join(manifest.root, image.path)),
      // Seeded by configuration and image, so an image's noise does not depend on which others are chosen.
      (input, i) => addGaussianNoise(input, deviation, configuration.seed * 100_003 + chosen[i]!.item),
    );
    for await (const { start, features } of batches) {
      const count = features.length / size;
      for (let i = 0; i < count; i++)
        noised.set(chosen[start + i]!.item, features.slice(i * size, (i + 1) * size));
      await context.progress?.('stability: noised test images', start + count, chosen.length);
    }
    return noised;
  } finally {
    backbone.dispose();
  }
}

/**
 * Prototypes, explanations, key channels and the faithfulness metrics of both trained heads, summarised
 * for the report. Content-addressed by the heads and features it reads and the explain settings.
 */
export async function explainStage(
  context: StageContext,
  configuration: Configuration,
  dataset: DatasetRef,
  train: FeaturesRef,
  test: FeaturesRef,
  trained: TrainedHeadRef[],
): Promise<ExplainStageResult> {
  const summaryKey = configurationSummaryKey(
    configuration,
    Object.fromEntries(trained.map((head) => [head.kind, head.key])),
    test.key,
  );
  const cached = await getJson<ConfigurationSummary>(context.store, summaryKey);
  if (cached)
    return {
      summaryKey,
      faithfulness: faithfulnessOf(cached),
      ...(cached.compute ? { compute: cached.compute } : {}),
    };
  const started = performance.now();
  // Seconds earlier runs spent on the heads they finished before they were cut off.
  let earlierSeconds = 0;
  await useBackend(context, configuration);
  const manifest = await localDatasetManifest(context, configuration, dataset);
  const [trainSet, testSet] = await Promise.all([
    StoredFeatureSet.open(context.store, train.key),
    StoredFeatureSet.open(context.store, test.key),
  ]);
  const [trainImages, testImages] = await Promise.all([
    annotatedImages(manifest, 'train', skippedImages(trainSet.manifest)),
    annotatedImages(manifest, 'test', skippedImages(testSet.manifest)),
  ]);
  const preset = backbonePreset({ preset: configuration.backbone.preset, inputSize: 224 });
  let noised: Promise<Map<number, Float32Array>> | undefined;
  const noisedFeatures = async (image: AnnotatedImage) => {
    noised ??= noisedTestFeatures(context, configuration, manifest, testImages);
    return (await noised).get(image.item);
  };
  const heads: ConfigurationSummary['heads'] = {};
  for (const head of trained) {
    // A head explained by a run cut off before the summary was written is not explained again.
    const partKey = explainedHeadKey(summaryKey, head.kind);
    const part = await getJson<ExplainedHead>(context.store, partKey);
    if (part) {
      heads[head.kind] = part.summary;
      earlierSeconds += part.seconds;
      continue;
    }
    const headStarted = performance.now();
    const restored = await loadTrainedHead(context, configuration, head, trainSet);
    try {
      const model =
        restored instanceof InfoDisentHead
          ? await infoDisentModel(restored)
          : await baselineModel(restored as BaselineHead);
      const explanations = await explainModel({
        model,
        train: trainSet,
        test: testSet,
        trainImages,
        testImages,
        preset,
        noisedFeatures,
        onProgress: (stage, done, total) => context.progress?.(`explain ${head.kind}: ${stage}`, done, total),
      });
      const evaluation = await evaluateStage(context, configuration, head, test);
      // The paper's analyses on the test features, both in one pass over the shards: rotated channels Z
      // for InfoDisent (U as the model already read it back), raw F for the baseline.
      const { channels } = testSet.shape;
      const rotationT =
        model.kind === 'infodisent'
          ? tf.tidy(() => tf.transpose(tf.tensor2d(model.rotation, [channels, channels])) as tf.Tensor2D)
          : undefined;
      try {
        const rv = new RvAccumulator(testSet.shape, sampleChannelPairs(channels, 500, configuration.seed));
        const ablation = new HeadAblation(
          { kind: head.kind, weights: model.weights, classes: manifest.classes.length },
          channels,
        );
        let done = 0;
        for await (const batch of analysedBatches(testSet, rotationT)) {
          rv.add(batch);
          ablation.addBatch(batch);
          done += batch.shape[0];
          await context.progress?.(`analyse ${head.kind}`, done, test.count);
        }
        heads[head.kind] = headSummary({
          evaluation,
          explanations,
          rv: rv.result(),
          ablation: ablation.result(),
        });
        const explained: ExplainedHead = {
          summary: heads[head.kind]!,
          seconds: (performance.now() - headStarted) / 1000,
        };
        await putJson(context.store, partKey, explained);
      } finally {
        rotationT?.dispose();
      }
    } finally {
      restored.dispose();
    }
  }
  const summary: ConfigurationSummary = {
    configuration: configuration.name,
    dataset: manifest.name,
    backbone: configuration.backbone.name,
    classes: manifest.classes,
    channels: train.shape.channels,
    datasetRoot: manifest.root,
    preset,
    heads,
    // Its images: the training set's, scanned for prototypes, and the test set's, explained and analysed.
    compute: computeRecord(
      tfjsRuntime(),
      earlierSeconds + (performance.now() - started) / 1000,
      train.count + test.count,
    ),
  };
  await putJson(context.store, summaryKey, summary);
  for (const head of trained) await context.store.delete(explainedHeadKey(summaryKey, head.kind));
  return { summaryKey, faithfulness: faithfulnessOf(summary), compute: summary.compute };
}

/** How many of a sweep's latest runs its report's history shows. */
const HISTORY_RUNS = 8;

/**
 * The sweep's HTML report and the paper's tables, written to a temporary folder and then copied into
 * the store under reports/<sweep>/ (so the same code serves a local folder and S3).
 */
export async function reportStage(
  context: StageContext,
  report: Omit<SweepReport, 'configurations'> & {
    summaryKeys: string[];
    /** Each configuration's heads' evaluations (absent in histories from before per-class accuracy). */
    evaluationKeys?: Partial<Record<HeadKind, string>>[];
  },
): Promise<{ reportKey: string; tableKeys: string[] }> {
  // Its results are written by now: the history includes this run, and its outcomes say how each head trained.
  const runs = await sweepRuns(context.store, report.sweep);
  const outcomes = new Map(
    runs.flatMap((run) => run.completed.map((outcome) => [outcome.summaryKey, outcome])),
  );
  const { configurations } = await readConfigurationSummaries(
    context.store,
    report.summaryKeys,
    report.evaluationKeys,
    report.summaryKeys.map((key) => {
      const outcome = outcomes.get(key);
      return outcome ? trainingSummaries(outcome) : {};
    }),
  );
  const folder = await mkdtemp(path.join(tmpdir(), 'infodisent-report-'));
  try {
    const { summaryKeys: _keys, evaluationKeys: _evaluations, ...rest } = report;
    // The report writes the paper's tables into its tables/ folder: those are the store's tables.
    const history = resultsHistory(runs.slice(-HISTORY_RUNS));
    const sincePrevious = await sincePreviousRun(context.store, runs, { finishedAt: report.generatedAt });
    const { tables } = await writeHtmlReport(folder, {
      ...rest,
      configurations,
      compute: computeEntries(runs.at(-1)?.completed ?? []),
      history,
      ...(sincePrevious ? { sincePrevious } : {}),
    });
    const prefix = reportPrefix(report.sweep);
    const files = await readdir(folder, { recursive: true, withFileTypes: true });
    for (const file of files.filter((f) => f.isFile())) {
      const relative = path.relative(folder, path.join(file.parentPath, file.name)).split(path.sep).join('/');
      await context.store.put(`${prefix}/${relative}`, await readFile(path.join(folder, relative)));
    }
    return {
      reportKey: `${prefix}/index.html`,
      tableKeys: tables.map((table) => `${prefix}/tables/${path.basename(table)}`),
    };
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
}
