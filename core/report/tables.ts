import type { Reported } from '../config/experiment';
import { faithfulnessFigures } from '../explain/explain-model';
import type { HeadKind } from '../method/head';
import { percentOf, roundDerived } from './round';
import type { ConfigurationSummary, HeadSummary, SweepAnnotations } from './summary';

export type Cell = string | number | null;

export interface TableColumn {
  key: string;
  label: string;
  /** Numbers are right-aligned and printed with `digits` decimals (CSV and JSON keep full precision). */
  kind: 'text' | 'number';
  digits?: number;
  /** Only in the machine-readable exports (CSV, JSON), not in Markdown, LaTeX or HTML. */
  hidden?: boolean;
  /** A positive value too small for `digits` is printed as "< 0.0001", not 0.0000 (p-values). */
  boundSmall?: boolean;
  /**
   * Over a configuration's seeds, also the sample standard deviation: in the hidden column `<key>_sd`,
   * printed as "mean ± sd" in Markdown, LaTeX and HTML.
   */
  spread?: boolean;
}

export interface Table {
  id: string;
  title: string;
  caption: string;
  columns: TableColumn[];
  rows: Record<string, Cell>[];
  /** A column whose repeated values are printed once per group in Markdown and LaTeX, as in the paper. */
  groupBy?: string;
}

/** The paper's tables, built from per-configuration results. */
export interface PaperTables {
  accuracy: Table;
  rv: Table;
  ablation: Table;
  /** SPEC section 6: ground-truth checks of the explanations. */
  faithfulness: Table;
}

const HEAD_LABEL: Record<HeadKind, string> = { infodisent: 'InfoDisent', baseline: 'baseline' };

const finite = (v: number | undefined): number | null => (v === undefined || !Number.isFinite(v) ? null : v);
const percent = (v: number | undefined | null): number | null =>
  finite(v === undefined || v === null ? undefined : percentOf(v));

function byDataset(configurations: readonly ConfigurationSummary[]): ConfigurationSummary[] {
  return [...configurations].sort((a, b) =>
    a.dataset === b.dataset
      ? a.backbone < b.backbone
        ? -1
        : a.backbone > b.backbone
          ? 1
          : 0
      : a.dataset < b.dataset
        ? -1
        : 1,
  );
}

const KEYS = [
  // Tells apart configurations that share a dataset and backbone (seeds, settings).
  { key: 'configuration', label: 'Configuration', kind: 'text', hidden: true },
  { key: 'dataset', label: 'Dataset', kind: 'text' },
  { key: 'backbone', label: 'Backbone', kind: 'text' },
] as const satisfies TableColumn[];

type ReportedMetric = keyof NonNullable<Reported['baseline']>;

/** The published figures each table prints, when configurations give them. */
const REPORTED_METRICS: Record<
  keyof PaperTables,
  { metric: ReportedMetric; label: string; digits: number }[]
> = {
  accuracy: [
    { metric: 'top1', label: 'top-1', digits: 1 },
    { metric: 'top5', label: 'top-5', digits: 1 },
  ],
  rv: [{ metric: 'rv', label: '', digits: 1 }],
  ablation: [{ metric: 'channels95', label: 'mean', digits: 1 }],
  faithfulness: [],
};

/**
 * Appends a "Paper" column for each (head, metric) that some configuration's published figures give, and
 * names their sources in the caption; a table no configuration reports on is returned as it is.
 */
function withReported(
  table: Table,
  metrics: (typeof REPORTED_METRICS)[keyof PaperTables],
  annotations: SweepAnnotations,
): Table {
  const figures = (row: Record<string, Cell>) => annotations[String(row.configuration)]?.reported;
  const columns = metrics.flatMap(({ metric, label, digits }) =>
    (['baseline', 'infodisent'] as const)
      .filter((kind) => table.rows.some((row) => figures(row)?.[kind]?.[metric] !== undefined))
      .map((kind) => ({
        kind,
        metric,
        key: `reported_${kind}_${metric}`,
        label: ['Paper', HEAD_LABEL[kind], label].filter(Boolean).join(' '),
        digits,
      })),
  );
  if (columns.length === 0) return table;
  // Only the sources that give a printed value are named.
  const sources = new Set(
    table.rows.flatMap((row) => {
      const given = figures(row);
      return given && columns.some((c) => given[c.kind]?.[c.metric] !== undefined) ? [given.source] : [];
    }),
  );
  return {
    ...table,
    caption: `${table.caption} Paper: as reported by ${[...sources].join('; ')}.`,
    columns: [
      ...table.columns,
      ...columns.map(({ key, label, digits }) => ({ key, label, kind: 'number' as const, digits })),
    ],
    rows: table.rows.map((row) => ({
      ...row,
      ...Object.fromEntries(columns.map((c) => [c.key, figures(row)?.[c.kind]?.[c.metric] ?? null])),
    })),
  };
}

const mean = (values: number[]) => values.reduce((sum, v) => sum + v, 0) / values.length;
/** The largest magnitude among values: the scale of the noise in their mean, deviation or difference. */
const largest = (values: readonly number[]) => Math.max(...values.map(Math.abs));
const sampleDeviation = (values: number[]) => {
  const m = mean(values);
  return Math.sqrt(values.reduce((sum, v) => sum + (v - m) ** 2, 0) / (values.length - 1));
};

/**
 * Merges the rows of a configuration's runs with several seeds (its `seeds`) into one row under the
 * configuration's name: numbers averaged over the runs that have them, with a Seeds column and, for the
 * `spread` columns, the sample standard deviation. A table without repeats is returned as it is.
 */
function mergeRepeats(table: Table, annotations: SweepAnnotations): Table {
  const base = (row: Record<string, Cell>) =>
    annotations[String(row.configuration)]?.repeatOf ?? String(row.configuration);
  // Rows are merged only where every other text cell agrees too (e.g. the head in per-head tables).
  const texts = table.columns.filter((c) => c.kind === 'text' && c.key !== 'configuration');
  const groups = new Map<string, Record<string, Cell>[]>();
  for (const row of table.rows) {
    const key = JSON.stringify([base(row), ...texts.map((c) => row[c.key] ?? null)]);
    groups.set(key, [...(groups.get(key) ?? []), row]);
  }
  if ([...groups.values()].every((rows) => rows.length === 1)) return table;
  const numbers = table.columns.filter((c) => c.kind === 'number');
  const spread = numbers.filter((c) => c.spread);
  const after = table.columns.findIndex((c) => c.key === 'backbone') + 1;
  return {
    ...table,
    caption: `${table.caption} Configurations run with several seeds: the mean over the seeds ± its sample standard deviation.`,
    columns: [
      ...table.columns.slice(0, after),
      { key: 'seeds', label: 'Seeds', kind: 'number', digits: 0 },
      ...table.columns.slice(after),
      ...spread.map((c) => ({
        key: `${c.key}_sd`,
        label: `${c.label} s.d.`,
        kind: 'number' as const,
        hidden: true,
        ...(c.digits === undefined ? {} : { digits: c.digits }),
      })),
    ],
    rows: [...groups.values()].map((rows) => {
      const merged: Record<string, Cell> = { ...rows[0]!, configuration: base(rows[0]!), seeds: rows.length };
      for (const column of numbers) {
        const values = rows.flatMap((row) => {
          const value = row[column.key];
          return typeof value === 'number' ? [value] : [];
        });
        merged[column.key] = values.length > 0 ? roundDerived(mean(values), largest(values)) : null;
        if (column.spread)
          merged[`${column.key}_sd`] =
            values.length > 1 ? roundDerived(sampleDeviation(values), largest(values)) : null;
      }
      return merged;
    }),
  };
}

/**
 * The paper's tables, built from per-configuration results. `annotations` (by configuration name) add the
 * published figures beside this sweep's and merge the runs of a configuration's seeds into one row.
 */
export function paperTables(
  configurations: readonly ConfigurationSummary[],
  annotations: SweepAnnotations = {},
): PaperTables {
  const tables = perConfigurationTables(configurations);
  const annotate = (id: keyof PaperTables) =>
    mergeRepeats(withReported(tables[id], REPORTED_METRICS[id], annotations), annotations);
  return {
    accuracy: annotate('accuracy'),
    rv: annotate('rv'),
    ablation: annotate('ablation'),
    faithfulness: annotate('faithfulness'),
  };
}

/** One row per configuration (per configuration and head in the faithfulness table). */
function perConfigurationTables(configurations: readonly ConfigurationSummary[]): PaperTables {
  const sorted = byDataset(configurations);
  const key = (c: ConfigurationSummary) => ({
    configuration: c.configuration,
    dataset: c.dataset,
    backbone: c.backbone,
  });
  const head = (c: ConfigurationSummary, kind: HeadKind): HeadSummary | undefined => c.heads[kind];
  const halfWidth = (h: HeadSummary | undefined) =>
    h?.rv ? finite(roundDerived((100 * (h.rv.ci95[1] - h.rv.ci95[0])) / 2, 100 * largest(h.rv.ci95))) : null;
  return {
    accuracy: {
      id: 'accuracy',
      title: 'Top-1 and top-5 test accuracy (%)',
      caption:
        'Test accuracy of the baseline head (average pooling, linear layer) and of InfoDisent, both on the frozen backbone.',
      groupBy: 'dataset',
      columns: [
        ...KEYS,
        { key: 'baseline_top1', label: 'Baseline top-1', kind: 'number', digits: 1, spread: true },
        { key: 'infodisent_top1', label: 'InfoDisent top-1', kind: 'number', digits: 1, spread: true },
        { key: 'baseline_top5', label: 'Baseline top-5', kind: 'number', digits: 1, spread: true },
        { key: 'infodisent_top5', label: 'InfoDisent top-5', kind: 'number', digits: 1, spread: true },
      ],
      rows: sorted.map((c) => ({
        ...key(c),
        baseline_top1: percent(head(c, 'baseline')?.top1),
        infodisent_top1: percent(head(c, 'infodisent')?.top1),
        baseline_top5: percent(head(c, 'baseline')?.top5),
        infodisent_top5: percent(head(c, 'infodisent')?.top5),
      })),
    },
    rv: {
      id: 'rv',
      title: 'Mean RV coefficient between channels (x100)',
      caption:
        "Mean RV coefficient over channel pairs (x100, the scale of the paper's Table 8) of the rotated channels Z (InfoDisent) and the raw channels F (baseline), with the half-width of the 95% interval.",
      groupBy: 'dataset',
      columns: [
        ...KEYS,
        { key: 'infodisent_rv', label: 'InfoDisent', kind: 'number', digits: 1, spread: true },
        { key: 'infodisent_rv_ci', label: 'InfoDisent 95% CI ±', kind: 'number', digits: 1 },
        { key: 'baseline_rv', label: 'Baseline', kind: 'number', digits: 1, spread: true },
        { key: 'baseline_rv_ci', label: 'Baseline 95% CI ±', kind: 'number', digits: 1 },
      ],
      rows: sorted.map((c) => ({
        ...key(c),
        infodisent_rv: percent(head(c, 'infodisent')?.rv?.mean),
        infodisent_rv_ci: halfWidth(head(c, 'infodisent')),
        baseline_rv: percent(head(c, 'baseline')?.rv?.mean),
        baseline_rv_ci: halfWidth(head(c, 'baseline')),
      })),
    },
    ablation: {
      id: 'ablation',
      title: 'Channels needed for 95% of the positive evidence',
      caption:
        'Per test image, the smallest number of channels whose largest positive contributions to the true class reach 95% of the total positive contribution: mean and median over images.',
      groupBy: 'dataset',
      columns: [
        ...KEYS,
        { key: 'channels', label: 'Channels', kind: 'number', digits: 0 },
        { key: 'infodisent_mean', label: 'InfoDisent mean', kind: 'number', digits: 1, spread: true },
        { key: 'infodisent_median', label: 'InfoDisent median', kind: 'number', digits: 1, spread: true },
        { key: 'baseline_mean', label: 'Baseline mean', kind: 'number', digits: 1, spread: true },
        { key: 'baseline_median', label: 'Baseline median', kind: 'number', digits: 1, spread: true },
      ],
      rows: sorted.map((c) => ({
        ...key(c),
        channels: c.channels,
        infodisent_mean: finite(head(c, 'infodisent')?.ablation?.mean),
        infodisent_median: finite(head(c, 'infodisent')?.ablation?.median),
        baseline_mean: finite(head(c, 'baseline')?.ablation?.mean),
        baseline_median: finite(head(c, 'baseline')?.ablation?.median),
      })),
    },
    faithfulness: {
      id: 'faithfulness',
      title: 'Explanations against ground-truth parts',
      caption:
        "Prototype purity (mean over channels; channels with purity > 0.5), purity of the classes' key channels, pointing game of the class heatmap (InfoDisent) or CAM (baseline), and consistency and stability of the key channels (stability: share of test images, re-extracted under small Gaussian input noise, whose parts hit by a channel do not change).",
      groupBy: 'dataset',
      columns: [
        ...KEYS,
        { key: 'head', label: 'Head', kind: 'text' },
        { key: 'purity', label: 'Purity', kind: 'number', digits: 3, spread: true },
        { key: 'pure_channels', label: 'Pure channels', kind: 'number', digits: 0 },
        { key: 'key_purity', label: 'Key-channel purity', kind: 'number', digits: 3, spread: true },
        { key: 'pointing', label: 'Pointing game %', kind: 'number', digits: 1, spread: true },
        { key: 'consistency', label: 'Consistency %', kind: 'number', digits: 1, spread: true },
        { key: 'stability', label: 'Stability %', kind: 'number', digits: 1, spread: true },
        { key: 'stability_images', label: 'Noised images', kind: 'number', digits: 0, hidden: true },
      ],
      rows: sorted.flatMap((c) =>
        (['infodisent', 'baseline'] as const).flatMap((kind) => {
          const faithfulness = head(c, kind)?.explanations?.faithfulness;
          if (!faithfulness) return [];
          const f = faithfulnessFigures(faithfulness);
          return [
            {
              ...key(c),
              head: HEAD_LABEL[kind],
              purity: f.purity,
              pure_channels: f.pureChannels,
              key_purity: f.keyChannelPurity,
              pointing: percent(f.pointing),
              consistency: percent(f.consistency),
              stability: percent(f.stability),
              stability_images: f.stabilityImages,
            },
          ];
        }),
      ),
    },
  };
}
