import type { Split } from '../data/dataset';
import type { ConfigurationOutcome } from '../pipeline/results';
import { type ComputeRecord, recordRate } from '../util/compute-record';
import { roughDuration } from '../util/duration';
import { plural } from '../util/plural';
import type { Table } from './tables';

/** One artifact behind a configuration's results, with what computing it took. */
export interface ComputeEntry {
  configuration: string;
  stage: `extract ${Split}` | 'train baseline' | 'train infodisent' | 'explain';
  /**
   * The feature set's, head's or explanation summary's store key: an artifact that configurations share is
   * counted once in totals.
   */
  artifact: string;
  /** Absent for artifacts computed before their records were kept. */
  record?: ComputeRecord;
  /** The images in the set, the head's training steps, or the images the explain stage read. */
  total: number;
}

/** The feature sets, heads and explain stages of a sweep's completed configurations, with their compute records. */
export function computeEntries(completed: readonly ConfigurationOutcome[]): ComputeEntry[] {
  return completed.flatMap((outcome) => [
    ...(['train', 'test'] as const).map((split) => {
      const record = outcome.features.compute?.[split];
      return {
        configuration: outcome.configuration,
        stage: `extract ${split}` as const,
        artifact: outcome.features[split],
        ...(record ? { record } : {}),
        total: outcome.dataset[split],
      };
    }),
    ...outcome.heads.map((head) => ({
      configuration: outcome.configuration,
      stage: `train ${head.kind}` as const,
      artifact: head.headKey,
      ...(head.compute ? { record: head.compute } : {}),
      total: head.training.steps,
    })),
    ...(outcome.explainCompute
      ? [
          {
            configuration: outcome.configuration,
            stage: 'explain' as const,
            artifact: outcome.summaryKey,
            record: outcome.explainCompute,
            total: outcome.explainCompute.items,
          },
        ]
      : []),
  ]);
}

/**
 * The seconds computing the whole artifact took: as recorded, or, for a feature set whose last run finished
 * shards an earlier one left, its whole size at the rate that run measured (null where it computed nothing).
 */
function wholeSeconds(entry: ComputeEntry): { seconds: number | null; estimated: boolean } {
  const record = entry.record!;
  if (record.items >= entry.total) return { seconds: record.seconds, estimated: false };
  if (record.items === 0) return { seconds: null, estimated: false };
  return { seconds: (record.seconds * entry.total) / record.items, estimated: true };
}

/**
 * A duration as the compute table prints it, precise to the second under an hour: "4.2s", "47s", "1m47s"
 * (106.76 s), "3h05m". (roughDuration's "2m" for 106.76 s, 12% off, suits messages, not a table of timings.)
 */
export function tableDuration(seconds: number): string {
  const t = Math.max(0, seconds);
  if (t < 9.95) return `${Number(t.toFixed(1))}s`;
  const s = Math.round(t);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  const minutes = Math.round(s / 60);
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`;
}

/** One row per configuration and stage that has a record; null when none has. */
export function computeTable(entries: readonly ComputeEntry[]): Table | null {
  const rows = entries.flatMap((entry) => {
    const record = entry.record;
    if (!record) return [];
    const { seconds, estimated } = wholeSeconds(entry);
    const rate = recordRate(record);
    const extraction = entry.stage.startsWith('extract');
    const training = entry.stage.startsWith('train');
    return [
      {
        configuration: entry.configuration,
        stage: entry.stage,
        time: seconds === null ? null : tableDuration(seconds),
        images_per_s: extraction ? rate : null,
        steps_per_s: training ? rate : null,
        runtime: record.name,
        hardware: record.hardware,
        note: estimated
          ? `resumed: timed on ${record.items} of ${entry.total} images`
          : seconds === null
            ? 'resumed with every shard stored: not timed'
            : '',
        seconds,
        items: record.items,
        finished: record.finishedAt,
      },
    ];
  });
  if (rows.length === 0) return null;
  return {
    id: 'compute',
    title: 'Time to compute the features, heads and explanations',
    caption:
      "Wall time of extracting each split's features, of training each head, and of the explain stage (prototypes, explanations, the analyses), on the runtime and hardware that computed them, whichever run of the sweep did (a cached artifact keeps its record). A feature set finished by a resumed run is timed at that run's rate.",
    columns: [
      { key: 'configuration', label: 'Configuration', kind: 'text' },
      { key: 'stage', label: 'Stage', kind: 'text' },
      { key: 'time', label: 'Time', kind: 'text' },
      { key: 'images_per_s', label: 'Images/s', kind: 'number', digits: 1 },
      { key: 'steps_per_s', label: 'Steps/s', kind: 'number', digits: 2 },
      { key: 'runtime', label: 'Runtime', kind: 'text' },
      { key: 'hardware', label: 'Hardware', kind: 'text' },
      { key: 'note', label: 'Note', kind: 'text', hidden: rows.every((row) => row.note === '') },
      { key: 'seconds', label: 'Seconds', kind: 'number', digits: 1, hidden: true },
      { key: 'items', label: 'Items timed', kind: 'number', digits: 0, hidden: true },
      { key: 'finished', label: 'Finished', kind: 'text', hidden: true },
    ],
    rows,
  };
}

const WORK = { extract: 'feature extraction', train: 'head training', explain: 'explanations and analyses' };

/**
 * The sweep's compute in a sentence, for a paper's statement of resources: the time of each kind of work
 * by runtime and hardware, each shared artifact once. Null when no artifact has a record.
 */
export function computeSentence(entries: readonly ComputeEntry[]): string | null {
  const seen = new Set<string>();
  const groups = new Map<string, Map<string, number>>();
  let estimated = false;
  let unrecorded = 0;
  for (const entry of entries) {
    if (seen.has(entry.artifact)) continue;
    seen.add(entry.artifact);
    if (!entry.record) {
      unrecorded++;
      continue;
    }
    const whole = wholeSeconds(entry);
    if (whole.seconds === null) continue;
    estimated ||= whole.estimated;
    const work = WORK[entry.stage.split(' ')[0] as 'extract' | 'train' | 'explain'];
    const where = `${entry.record.name} on ${entry.record.hardware}`;
    const byPlace = groups.get(work) ?? new Map<string, number>();
    byPlace.set(where, (byPlace.get(where) ?? 0) + whole.seconds);
    groups.set(work, byPlace);
  }
  if (groups.size === 0) return null;
  const sum = (values: Iterable<number>) => [...values].reduce((a, b) => a + b, 0);
  const all = sum([...groups.values()].map((byPlace) => sum(byPlace.values())));
  const parts = [...groups].map(([work, byPlace]) => {
    const places = [...byPlace].map(([where, seconds]) =>
      byPlace.size > 1 ? `${roughDuration(seconds)} ${where}` : where,
    );
    return `${work} ${roughDuration(sum(byPlace.values()))} (${places.join('; ')})`;
  });
  return (
    `Computing these results took ${roughDuration(all)}: ${parts.join(', ')}.` +
    (estimated ? " Feature sets finished by a resumed run are timed at that run's rate." : '') +
    (unrecorded > 0
      ? ` Not counted: ${plural(unrecorded, 'artifact')} computed before compute records were kept.`
      : '')
  );
}
