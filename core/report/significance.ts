import type { HeadKind } from '../method/head';
import { percentOf } from './round';
import type { ConfigurationSummary } from './summary';
import type { Table } from './tables';

const HEADS: HeadKind[] = ['baseline', 'infodisent'];

/**
 * How sure each configuration's top-1 figures are: each head's Wilson 95% interval, and the two heads
 * compared image by image on the same test images (McNemar's exact test). One row per configuration and
 * seed, since each run is its own test; null where the evaluations did not keep what a figure needs.
 */
export function significanceTable(configurations: readonly ConfigurationSummary[]): Table | null {
  const rows = configurations.flatMap((c) => {
    const intervals = HEADS.map((kind) => c.heads[kind]?.top1Interval);
    if (!c.paired && intervals.every((interval) => interval === undefined)) return [];
    const percent = (v: number | undefined) => (v === undefined ? null : percentOf(v));
    return [
      {
        configuration: c.configuration,
        dataset: c.dataset,
        backbone: c.backbone,
        test_images: c.paired?.images ?? null,
        ...Object.fromEntries(
          HEADS.flatMap((kind, i) => [
            [`${kind}_top1`, percent(c.heads[kind]?.top1)],
            [`${kind}_top1_low`, percent(intervals[i]?.[0])],
            [`${kind}_top1_high`, percent(intervals[i]?.[1])],
          ]),
        ),
        baseline_only: c.paired?.onlyFirst ?? null,
        infodisent_only: c.paired?.onlySecond ?? null,
        difference: percent(c.paired?.difference),
        mcnemar_p: c.paired?.p ?? null,
      },
    ];
  });
  if (rows.length === 0) return null;
  const interval = (kind: HeadKind, label: string) =>
    [
      { key: `${kind}_top1`, label: `${label} top-1`, kind: 'number', digits: 1 },
      { key: `${kind}_top1_low`, label: '95% low', kind: 'number', digits: 1 },
      { key: `${kind}_top1_high`, label: '95% high', kind: 'number', digits: 1 },
    ] as const;
  return {
    id: 'significance',
    title: 'Top-1 (%) with 95% intervals, and the heads compared image by image',
    caption:
      "Wilson score intervals of each head's top-1 over the test images. Baseline only / InfoDisent only: test " +
      'images one head classifies correctly and the other does not; difference: InfoDisent minus baseline, in ' +
      "points; p: McNemar's exact two-sided test of that difference.",
    columns: [
      { key: 'configuration', label: 'Configuration', kind: 'text' },
      { key: 'dataset', label: 'Dataset', kind: 'text' },
      { key: 'backbone', label: 'Backbone', kind: 'text' },
      { key: 'test_images', label: 'Test images', kind: 'number', digits: 0 },
      ...interval('baseline', 'Baseline'),
      ...interval('infodisent', 'InfoDisent'),
      { key: 'baseline_only', label: 'Baseline only', kind: 'number', digits: 0 },
      { key: 'infodisent_only', label: 'InfoDisent only', kind: 'number', digits: 0 },
      { key: 'difference', label: 'Difference', kind: 'number', digits: 1 },
      { key: 'mcnemar_p', label: 'McNemar p', kind: 'number', digits: 4, boundSmall: true },
    ],
    rows,
  };
}
