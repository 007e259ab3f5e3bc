import type { HeadKind } from '../method/head';
import type { SweepResults } from '../pipeline/results';

/** One head of one configuration over a sweep's runs. */
export interface HistoryRow {
  configuration: string;
  head: HeadKind;
  /** Top-1 in [0, 1] in each run, null where the run did not have it (not run, or failed). */
  top1: (number | null)[];
}

export interface ResultsHistory {
  sweep: string;
  /** When each run finished, oldest first. */
  runs: string[];
  rows: HistoryRow[];
}

/** What the history reads of a run's results. */
export type RunTop1 = Pick<SweepResults, 'sweep' | 'finishedAt'> & {
  completed: { configuration: string; heads: { kind: HeadKind; evaluation: { top1: number } }[] }[];
};

/**
 * Each head's top-1 across runs of a sweep (e.g. scheduled re-evaluations), in the latest run's order of
 * configurations, then those only earlier runs had.
 */
export function resultsHistory(runs: readonly RunTop1[]): ResultsHistory {
  const rows = new Map<string, HistoryRow>();
  const newestFirst = [...runs].reverse();
  for (const run of newestFirst) {
    for (const outcome of run.completed) {
      for (const head of outcome.heads) {
        const id = JSON.stringify([outcome.configuration, head.kind]);
        if (!rows.has(id))
          rows.set(id, { configuration: outcome.configuration, head: head.kind, top1: runs.map(() => null) });
      }
    }
  }
  for (const [index, run] of runs.entries()) {
    for (const outcome of run.completed) {
      for (const head of outcome.heads)
        rows.get(JSON.stringify([outcome.configuration, head.kind]))!.top1[index] = head.evaluation.top1;
    }
  }
  return { sweep: runs[0]?.sweep ?? '', runs: runs.map((run) => run.finishedAt), rows: [...rows.values()] };
}
