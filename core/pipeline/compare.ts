import { isDeepStrictEqual } from 'node:util';
import { type PairedComparison, pairedComparison } from '../analysis/significance';
import type { Evaluation } from '../method/evaluate';
import type { HeadKind } from '../method/head';
import { type ArtifactStore, getJson } from '../store/artifact-store';
import type { SweepResults } from './results';
import type { EvaluationSummary } from './stages';

/** One head of one configuration in two runs (two sweeps, or two runs of one sweep). */
export interface HeadComparison {
  configuration: string;
  head: HeadKind;
  /** Top-1 in [0, 1] in the first run and in the second. */
  top1: [number, number];
  /** The two runs' predictions image by image, where both evaluations kept them for the same test images. */
  paired: PairedComparison | null;
  /** Why there is no paired comparison. */
  unpaired?: string;
}

export interface RunComparison {
  first: { sweep: string; finishedAt: string };
  second: { sweep: string; finishedAt: string };
  heads: HeadComparison[];
  /** Configurations only one of the runs completed. */
  onlyInFirst: string[];
  onlyInSecond: string[];
}

/** What a comparison reads of a run's results. */
export type RunEvaluations = Pick<SweepResults, 'sweep' | 'finishedAt'> & {
  completed: {
    configuration: string;
    heads: { kind: HeadKind; evaluation: Pick<EvaluationSummary, 'top1' | 'detailsKey'> }[];
  }[];
};

type Predictions = Required<Pick<Evaluation, 'labels' | 'predictions'>>;

/** A head's stored predictions, or why they cannot be paired. */
async function readPredictions(store: ArtifactStore, key: string): Promise<Predictions | string> {
  const evaluation = await getJson<Evaluation>(store, key);
  if (!evaluation) return `evaluation ${key} is no longer in the store`;
  if (!evaluation.labels || !evaluation.predictions)
    return 'an evaluation from before predictions were kept (run the sweep again to redo it)';
  return { labels: evaluation.labels, predictions: evaluation.predictions };
}

/**
 * Every head that both runs completed, by configuration name: its top-1 in each, and where both evaluations
 * kept their predictions on the same test images, the change image by image (McNemar's exact test).
 */
export async function compareRuns(
  store: ArtifactStore,
  first: RunEvaluations,
  second: RunEvaluations,
): Promise<RunComparison> {
  const secondByName = new Map(second.completed.map((outcome) => [outcome.configuration, outcome]));
  const firstNames = new Set(first.completed.map((outcome) => outcome.configuration));
  const heads: HeadComparison[] = [];
  for (const outcome of first.completed) {
    const other = secondByName.get(outcome.configuration);
    if (!other) continue;
    for (const head of outcome.heads) {
      const otherHead = other.heads.find((h) => h.kind === head.kind);
      if (!otherHead) continue;
      const [a, b] = await Promise.all([
        readPredictions(store, head.evaluation.detailsKey),
        readPredictions(store, otherHead.evaluation.detailsKey),
      ]);
      let paired: PairedComparison | null = null;
      let unpaired: string | undefined;
      if (typeof a === 'string') unpaired = a;
      else if (typeof b === 'string') unpaired = b;
      else if (!isDeepStrictEqual(a.labels, b.labels)) unpaired = 'evaluated on other test images';
      else paired = pairedComparison(a.labels, a.predictions, b.predictions);
      heads.push({
        configuration: outcome.configuration,
        head: head.kind,
        top1: [head.evaluation.top1, otherHead.evaluation.top1],
        paired,
        ...(unpaired === undefined ? {} : { unpaired }),
      });
    }
  }
  return {
    first: { sweep: first.sweep, finishedAt: first.finishedAt },
    second: { sweep: second.sweep, finishedAt: second.finishedAt },
    heads,
    onlyInFirst: [...firstNames].filter((name) => !secondByName.has(name)),
    onlyInSecond: second.completed.map((o) => o.configuration).filter((name) => !firstNames.has(name)),
  };
}

/**
 * A run against the one before it, where the sweep has one: `runs` as sweepRuns gives them (oldest first),
 * `current` one of them.
 */
export async function sincePreviousRun(
  store: ArtifactStore,
  runs: readonly SweepResults[],
  current: Pick<SweepResults, 'finishedAt'>,
): Promise<RunComparison | null> {
  const index = runs.findIndex((run) => run.finishedAt === current.finishedAt);
  return index > 0 ? compareRuns(store, runs[index - 1]!, runs[index]!) : null;
}
