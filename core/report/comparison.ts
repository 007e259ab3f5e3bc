import type { HeadComparison, RunComparison } from '../pipeline/compare';
import { percentChange, percentOf } from './round';
import type { Table } from './tables';

/** Whether a head's predictions differ between the two runs (or cannot be told apart image by image). */
export function headChanged(head: HeadComparison): boolean {
  return (
    head.top1[0] !== head.top1[1] || !head.paired || head.paired.onlyFirst > 0 || head.paired.onlySecond > 0
  );
}

/**
 * The comparison as a table: top-1 % in each run, the change, the images only one gets right, and p.
 * `names` label the two runs; `heads` picks the rows (default: every head both runs have).
 */
export function comparisonTable(
  comparison: RunComparison,
  names: [string, string] = ['First', 'Second'],
  heads: readonly HeadComparison[] = comparison.heads,
): Table {
  const [first, second] = names;
  return {
    id: 'comparison',
    title: 'Top-1 accuracy (%) in two runs',
    caption:
      `${first} and ${second.toLowerCase()}: the two runs compared. Only ${first.toLowerCase()} / only ` +
      `${second.toLowerCase()}: test images one run classifies correctly and the other does not; p: McNemar's ` +
      'exact two-sided test of the change.',
    columns: [
      { key: 'configuration', label: 'Configuration', kind: 'text' },
      { key: 'head', label: 'Head', kind: 'text' },
      { key: 'first_top1', label: first, kind: 'number', digits: 1 },
      { key: 'second_top1', label: second, kind: 'number', digits: 1 },
      { key: 'change', label: 'Change', kind: 'number', digits: 1 },
      { key: 'only_first', label: `Only ${first.toLowerCase()}`, kind: 'number', digits: 0 },
      { key: 'only_second', label: `Only ${second.toLowerCase()}`, kind: 'number', digits: 0 },
      { key: 'p', label: 'p', kind: 'number', digits: 4, boundSmall: true },
    ],
    rows: heads.map(({ configuration, head, top1, paired }) => ({
      configuration,
      head,
      first_top1: percentOf(top1[0]),
      second_top1: percentOf(top1[1]),
      change: percentChange(top1[0], top1[1]),
      only_first: paired?.onlyFirst ?? null,
      only_second: paired?.onlySecond ?? null,
      p: paired?.p ?? null,
    })),
  };
}
