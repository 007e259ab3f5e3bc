import type { HeadKind } from '../method/head';
import type { SweepResults } from '../pipeline/results';
import { percentChange, percentOf } from './round';
import type { Table } from './tables';

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

/** Top-1 % per run (columns run_1 … by date) and the change from the first run to the last. */
export function historyTable(history: ResultsHistory): Table {
  const runColumn = (index: number) => `run_${index + 1}`;
  return {
    id: 'history',
    title: "Top-1 accuracy (%) over the sweep's runs",
    caption:
      'Each run of the sweep, oldest first (e.g. scheduled re-evaluations); change: last against first.',
    columns: [
      { key: 'configuration', label: 'Configuration', kind: 'text' },
      { key: 'head', label: 'Head', kind: 'text' },
      ...history.runs.map((finishedAt, index) => ({
        key: runColumn(index),
        // To the minute, UTC: runs are days apart (a run's full time is in the JSON).
        label: `${finishedAt.slice(0, 16).replace('T', ' ')} UTC`,
        kind: 'number' as const,
        digits: 1,
      })),
      { key: 'change', label: 'Change', kind: 'number', digits: 1 },
    ],
    rows: history.rows.map(({ configuration, head, top1 }) => {
      const first = top1.find((v) => v !== null) ?? null;
      const last = top1.at(-1) ?? null;
      return {
        configuration,
        head,
        ...Object.fromEntries(top1.map((v, index) => [runColumn(index), v === null ? null : percentOf(v)])),
        change: first === null || last === null ? null : percentChange(first, last),
      };
    }),
  };
}
