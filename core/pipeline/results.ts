import { isDeepStrictEqual } from 'node:util';
import { pairedComparison, wilsonInterval } from '../analysis/significance';
import type { Reported } from '../config/experiment';
import type { Split } from '../data/dataset';
import type { FaithfulnessFigures } from '../explain/explain-model';
import type { Evaluation } from '../method/evaluate';
import type { HeadKind } from '../method/head';
import type { TrainResult } from '../method/train';
import { classBreakdown } from '../report/classes';
import { computeEntries, computeSentence, computeTable } from '../report/compute';
import { type ConfigurationSummary, skippedCount, type TrainingSummary } from '../report/summary';
import { tableMarkdown } from '../report/table-formats';
import { type ArtifactStore, getJson, putJson } from '../store/artifact-store';
import type { ComputeRecord } from '../util/compute-record';
import { plural } from '../util/plural';
import type { EvaluationSummary } from './stages';

export interface HeadOutcome {
  kind: HeadKind;
  backend: string;
  headKey: string;
  reusedHead: boolean;
  training: TrainResult;
  /** What training took, and on what; absent for heads trained before it was kept. */
  compute?: ComputeRecord;
  /** Accuracies; the per-class accuracies and confusion counts are in the store under `detailsKey`. */
  evaluation: EvaluationSummary;
  /** The explanations against ground-truth parts (SPEC section 6), once the explain stage has run. */
  faithfulness?: FaithfulnessFigures;
}

export interface ConfigurationOutcome {
  configuration: string;
  /** Store key of the configuration's explanation summary (prototypes, explanations, faithfulness). */
  summaryKey: string;
  dataset: {
    name: string;
    classes: number;
    train: number;
    test: number;
    /** The files left out (skipInvalid), with why: the first ones of each stage that left some out. */
    skipped: { path: string; reason: string }[];
    /** How many were left out in all; absent in results from before it was counted (all were listed). */
    skippedCount?: number;
  };
  backbone: string;
  features: {
    train: string;
    test: string;
    reused: boolean;
    /** What extracting each split took, and on what; a split extracted before it was kept has none. */
    compute?: Partial<Record<Split, ComputeRecord>>;
  };
  heads: HeadOutcome[];
  /** What the explain stage took: prototypes, explanations, the paper's analyses and their faithfulness. */
  explainCompute?: ComputeRecord;
  /** The configuration's published figures, printed beside these in the paper's tables. */
  reported?: Reported;
  /** Absent in results from before seeds were recorded. */
  seed?: number;
  /** The configuration this one repeats with another seed (a configuration's `seeds`). */
  repeatOf?: string;
}

export interface ConfigurationFailure {
  configuration: string;
  error: string;
}

export interface SweepResults {
  sweep: string;
  finishedAt: string;
  completed: ConfigurationOutcome[];
  failed: ConfigurationFailure[];
}

const percent = (value: number) => (100 * value).toFixed(1);

export function resultsTable(results: SweepResults): string {
  const header =
    '| configuration | classes | backbone | head | backend | top-1 % | top-5 % | chance % | features |';
  const rule = '|---|---:|---|---|---|---:|---:|---:|---|';
  const rows = results.completed.flatMap((outcome) =>
    outcome.heads.map(
      (head) =>
        `| ${outcome.configuration} | ${outcome.dataset.classes} | ${outcome.backbone} | ${head.kind} | ${head.backend} | ` +
        `${percent(head.evaluation.top1)} | ${percent(head.evaluation.top5)} | ${percent(1 / outcome.dataset.classes)} | ` +
        `${outcome.features.reused ? 'cached' : 'extracted'} |`,
    ),
  );
  return [header, rule, ...rows].join('\n');
}

const percentOrDash = (value: number | null) => (value === null ? '—' : percent(value));

/** Purity, pointing game, consistency and stability of every explained head; null when none was explained. */
export function faithfulnessTable(results: SweepResults): string | null {
  const rows = results.completed.flatMap((outcome) =>
    outcome.heads.flatMap(({ kind, faithfulness: f }) =>
      f
        ? [
            `| ${outcome.configuration} | ${kind} | ${f.purity === null ? '—' : f.purity.toFixed(3)} | ${f.pureChannels} | ` +
              `${f.keyChannelPurity === null ? '—' : f.keyChannelPurity.toFixed(3)} | ${percentOrDash(f.pointing)} | ` +
              `${percentOrDash(f.consistency)} | ${percentOrDash(f.stability)} | ${f.stabilityImages} |`,
          ]
        : [],
    ),
  );
  if (rows.length === 0) return null;
  return [
    '| configuration | head | purity | pure channels | key-channel purity | pointing % | consistency % | stability % | noised images |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|',
    ...rows,
  ].join('\n');
}

/** Files listed per configuration in results.md; results.json has all the results carry (SKIPPED_CARRIED a stage). */
const SKIPPED_SHOWN = 20;

/** The files each configuration left out (dataset.skipInvalid), as results.md lists them; [] when none. */
function skippedFiles(results: SweepResults): string[] {
  return results.completed.flatMap(({ configuration, dataset }) => {
    const count = skippedCount(dataset);
    if (count === 0) return [];
    const shown = dataset.skipped.slice(0, SKIPPED_SHOWN);
    const more = count - shown.length;
    const listed = dataset.skipped.length - shown.length;
    return [
      `- **${configuration}**: ${plural(count, 'file')} of dataset \`${dataset.name}\``,
      ...shown.map(({ reason }) => `  - ${reason}`),
      ...(more > 0
        ? [`  - … and ${more} more${listed > 0 ? ` (results.json lists ${listed} of them)` : ''}`]
        : []),
    ];
  });
}

/** "2 configurations left out 5 files in all (skipInvalid): results.md lists them", or undefined. */
export function skippedSentence(results: SweepResults): string | undefined {
  const counts = results.completed.map((outcome) => skippedCount(outcome.dataset)).filter((n) => n > 0);
  if (counts.length === 0) return undefined;
  const files = plural(
    counts.reduce((a, b) => a + b, 0),
    'file',
  );
  return `${plural(counts.length, 'configuration')} left out ${files} that could not be read (skipInvalid): results.md lists them`;
}

export function resultsMarkdown(results: SweepResults): string {
  const skipped = skippedFiles(results);
  const failures = results.failed.map((failure) => `- **${failure.configuration}**: ${failure.error}`);
  const faithfulness = faithfulnessTable(results);
  const compute = computeEntries(results.completed);
  const computeFigures = computeTable(compute);
  return [
    `# Sweep \`${results.sweep}\``,
    '',
    `Finished ${results.finishedAt}.`,
    '',
    '## Top-1 test accuracy',
    '',
    resultsTable(results),
    '',
    ...(faithfulness
      ? [
          '## Explanations against ground-truth parts',
          '',
          faithfulness,
          '',
          "Purity: share of a channel's 5 prototypes showing its most frequent part (mean over channels; pure: > 0.5). " +
            'Pointing game: the peak of the true class heatmap (InfoDisent) or CAM (baseline) falls on a part of the class. ' +
            "Consistency and stability of the classes' key channels: a part in the 72 px box around the channel's peak " +
            "in at least 80% of the class's images; the parts hit unchanged under small Gaussian input noise.",
          '',
        ]
      : []),
    ...(computeFigures
      ? ['## Compute', '', computeSentence(compute) ?? '', '', tableMarkdown(computeFigures)]
      : []),
    ...(skipped.length > 0
      ? [
          '## Files left out',
          '',
          'Files the configurations with `skipInvalid` could not read, left out of their features and results:',
          '',
          ...skipped,
          '',
        ]
      : []),
    ...(failures.length > 0 ? ['## Failed configurations', '', ...failures, ''] : []),
  ].join('\n');
}

/** The stored artifacts a configuration's results read: its features, heads and explanation summary. */
export function outcomeKeys(outcome: ConfigurationOutcome): string[] {
  return [
    outcome.features.train,
    outcome.features.test,
    ...outcome.heads.map((head) => head.headKey),
    outcome.summaryKey,
  ];
}

/** Store keys of a sweep's outputs: results/<sweep>/ (results.json, .md) and reports/<sweep>/ (HTML, tables). */
export const resultsPrefix = (sweep: string) => `results/${sweep}`;
export const reportPrefix = (sweep: string) => `reports/${sweep}`;

/** Where a run's results are kept after the next run replaces results.json: by the time it finished. */
const runKey = (results: SweepResults) =>
  `${resultsPrefix(results.sweep)}/runs/${results.finishedAt.replace(/[:.]/g, '-')}.json`;

/**
 * Writes results.json and results.md under results/<sweep>/ and returns their keys; a copy of the results
 * stays under runs/, so that re-evaluations keep a history.
 */
export async function writeSweepResults(store: ArtifactStore, results: SweepResults): Promise<string[]> {
  const json = `${resultsPrefix(results.sweep)}/results.json`;
  const markdown = `${resultsPrefix(results.sweep)}/results.md`;
  await putJson(store, runKey(results), results);
  await putJson(store, json, results);
  await store.put(markdown, Buffer.from(resultsMarkdown(results), 'utf8'));
  return [json, markdown];
}

export function readSweepResults(store: ArtifactStore, sweep: string): Promise<SweepResults | undefined> {
  return getJson<SweepResults>(store, `${resultsPrefix(sweep)}/results.json`);
}

/**
 * The keys of a sweep's results and report, its results.json first; `remove` deletes them in that order,
 * so from the first delete on the store holds no such sweep, and whatever only it used is left to a prune.
 */
export async function forgetSweep(
  store: ArtifactStore,
  sweep: string,
  { remove }: { remove: boolean },
): Promise<string[]> {
  const json = `${resultsPrefix(sweep)}/results.json`;
  const keys = [
    json,
    ...[
      ...(await store.list(`${resultsPrefix(sweep)}/`)),
      ...(await store.list(`${reportPrefix(sweep)}/`)),
    ].filter((key) => key !== json),
  ];
  if (remove) for (const key of keys) await store.delete(key);
  return keys;
}

/**
 * Every stored run of a sweep, oldest first: those kept under runs/, and the latest results.json where it
 * has no copy there (a run from before runs were kept).
 */
export async function sweepRuns(store: ArtifactStore, sweep: string): Promise<SweepResults[]> {
  const keys = (await store.list(`${resultsPrefix(sweep)}/runs/`)).filter((key) => key.endsWith('.json'));
  const runs = (await Promise.all(keys.map((key) => getJson<SweepResults>(store, key)))).filter(
    (run): run is SweepResults => run !== undefined,
  );
  const latest = await readSweepResults(store, sweep);
  if (latest && !runs.some((run) => run.finishedAt === latest.finishedAt)) runs.push(latest);
  return runs.sort((a, b) => a.finishedAt.localeCompare(b.finishedAt));
}

/** The sweeps whose results are in the store (a run writes them when it finishes), newest first. */
export async function storedSweeps(store: ArtifactStore): Promise<SweepResults[]> {
  const keys = await store.list('results/');
  const names = keys.flatMap((key) => /^results\/([^/]+)\/results\.json$/.exec(key)?.[1] ?? []);
  const found = await Promise.all(names.map((name) => readSweepResults(store, name)));
  return found
    .filter((results): results is SweepResults => results !== undefined)
    .sort((a, b) => b.finishedAt.localeCompare(a.finishedAt));
}

/**
 * The configuration summaries the explain stage wrote (what the report and tables are made of), each head
 * with its accuracy class by class and its top-1's 95% interval where its evaluation is given (`evaluations[i]`,
 * by head) and stored, the two heads compared image by image where both evaluations kept their predictions,
 * and each head's training where `training[i]` gives it.
 */
export async function readConfigurationSummaries(
  store: ArtifactStore,
  keys: readonly string[],
  evaluations: readonly Partial<Record<HeadKind, string>>[] = [],
  training: readonly Partial<Record<HeadKind, TrainingSummary>>[] = [],
): Promise<{ configurations: ConfigurationSummary[]; missing: string[] }> {
  const read = await Promise.all(
    keys.map(async (key, i) => {
      const summary = await getJson<ConfigurationSummary>(store, key);
      for (const [kind, trained] of Object.entries(training[i] ?? {})) {
        const head = summary?.heads[kind as HeadKind];
        if (head) head.training = trained;
      }
      const read: Partial<Record<HeadKind, Evaluation>> = {};
      for (const [kind, evaluationKey] of Object.entries(evaluations[i] ?? {})) {
        const head = summary?.heads[kind as HeadKind];
        const evaluation = head && (await getJson<Evaluation>(store, evaluationKey));
        if (!head || !evaluation) continue;
        read[kind as HeadKind] = evaluation;
        head.classes = classBreakdown(evaluation.confusion);
        const correct = evaluation.confusion.reduce((sum, row, label) => sum + row[label]!, 0);
        head.top1Interval = wilsonInterval(correct, evaluation.count);
      }
      const { baseline, infodisent } = read;
      // Paired only on the same test images, in the same order.
      if (
        summary &&
        baseline?.labels &&
        baseline.predictions &&
        infodisent?.predictions &&
        isDeepStrictEqual(baseline.labels, infodisent.labels)
      )
        summary.paired = pairedComparison(baseline.labels, baseline.predictions, infodisent.predictions);
      return summary;
    }),
  );
  return {
    configurations: read.filter((summary): summary is ConfigurationSummary => summary !== undefined),
    missing: keys.filter((_, i) => read[i] === undefined),
  };
}
