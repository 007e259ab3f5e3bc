import type { HeadKind } from '../method/head';
import { percentOf } from './round';
import type { ConfigurationSummary } from './summary';
import type { Table } from './tables';

/** A mistake the head makes: test images of class `label` it predicts as `predicted`. */
export interface ClassConfusion {
  label: number;
  predicted: number;
  count: number;
}

/** A head's accuracy class by class, from its confusion counts. */
export interface ClassBreakdown {
  /** Test images of each class. */
  images: number[];
  /** Top-1 accuracy of each class in [0, 1]; null for a class without test images. */
  accuracy: (number | null)[];
  /** Its most frequent mistakes, most first (ties by class index). */
  confusions: ClassConfusion[];
}

/** How many of a head's most frequent mistakes the report keeps. */
export const CONFUSIONS_KEPT = 10;

/** From confusion[true][predicted] counts. */
export function classBreakdown(
  confusion: readonly (readonly number[])[],
  kept = CONFUSIONS_KEPT,
): ClassBreakdown {
  const images = confusion.map((row) => row.reduce((sum, n) => sum + n, 0));
  const accuracy = confusion.map((row, label) => (images[label]! > 0 ? row[label]! / images[label]! : null));
  const confusions = confusion
    .flatMap((row, label) =>
      row.flatMap((count, predicted) =>
        predicted !== label && count > 0 ? [{ label, predicted, count }] : [],
      ),
    )
    .sort((a, b) => b.count - a.count || a.label - b.label || a.predicted - b.predicted)
    .slice(0, kept);
  return { images, accuracy, confusions };
}

const HEADS: HeadKind[] = ['infodisent', 'baseline'];

/**
 * Per-class top-1 of every configuration whose evaluation gave it, one row per configuration and class:
 * the supplementary table that papers print for their hardest classes (CSV: thousands of rows on ImageNet).
 */
export function classTable(configurations: readonly ConfigurationSummary[]): Table | null {
  const rows = configurations.flatMap((c) => {
    const breakdowns = HEADS.map((kind) => c.heads[kind]?.classes);
    const any = breakdowns.find((b) => b !== undefined);
    if (!any) return [];
    return c.classes.map((name, label) => ({
      configuration: c.configuration,
      dataset: c.dataset,
      backbone: c.backbone,
      class: label,
      class_name: name,
      images: any.images[label] ?? 0,
      ...Object.fromEntries(
        HEADS.map((kind, i) => {
          const accuracy = breakdowns[i]?.accuracy[label];
          return [`${kind}_top1`, accuracy === undefined || accuracy === null ? null : percentOf(accuracy)];
        }),
      ),
    }));
  });
  if (rows.length === 0) return null;
  return {
    id: 'classes',
    title: 'Top-1 accuracy (%) of each class',
    caption: 'Per class of each configuration, on its test images.',
    columns: [
      { key: 'configuration', label: 'Configuration', kind: 'text' },
      { key: 'dataset', label: 'Dataset', kind: 'text' },
      { key: 'backbone', label: 'Backbone', kind: 'text' },
      { key: 'class', label: 'Class', kind: 'number', digits: 0 },
      { key: 'class_name', label: 'Name', kind: 'text' },
      { key: 'images', label: 'Test images', kind: 'number', digits: 0 },
      { key: 'infodisent_top1', label: 'InfoDisent top-1', kind: 'number', digits: 1 },
      { key: 'baseline_top1', label: 'Baseline top-1', kind: 'number', digits: 1 },
    ],
    rows,
  };
}
