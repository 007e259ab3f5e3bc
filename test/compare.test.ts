import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { mcnemarExact } from '../core/analysis/significance';
import type { Evaluation } from '../core/method/evaluate';
import type { HeadKind } from '../core/method/head';
import { compareRuns, type RunComparison, sincePreviousRun } from '../core/pipeline/compare';
import { sweepNotification } from '../core/pipeline/notify';
import { type ConfigurationOutcome, type SweepResults, writeSweepResults } from '../core/pipeline/results';
import { comparisonTable, headChanged } from '../core/report/comparison';
import { percentChange, percentOf, roundDerived } from '../core/report/round';
import { tableCsv } from '../core/report/table-formats';
import { putJson } from '../core/store/artifact-store';
import { LocalArtifactStore } from '../core/store/local-store';
import { SeededRandom } from '../core/util/random';
import { runCli } from './support/cli';

/**
 * Two runs compared head by head: runs of one sweep (a re-evaluation after a change) and two sweeps, on a
 * store holding their results and the heads' evaluations as the pipeline writes them.
 */

const IMAGES = 400;
const CLASSES = 10;
const random = new SeededRandom(99);
const labels = Array.from({ length: IMAGES }, () => random.int(0, CLASSES - 1));
const otherLabels = Array.from({ length: IMAGES }, () => random.int(0, CLASSES - 1));
const guesses = (truth: number[], hitRate: number) =>
  truth.map((label) =>
    random.next() < hitRate ? label : (label + 1 + random.int(0, CLASSES - 2)) % CLASSES,
  );
const predictions = {
  old: guesses(labels, 0.7),
  better: guesses(labels, 0.8),
  fp16: guesses(labels, 0.7),
  otherSet: guesses(otherLabels, 0.7),
};

let dir: string;
let store: LocalArtifactStore;

/** An evaluation as evaluateStage stores it; without predictions, as it was before they were kept. */
async function evaluation(key: string, truth: number[], predicted: number[] | undefined): Promise<number> {
  const confusion = Array.from({ length: CLASSES }, () => new Array<number>(CLASSES).fill(0));
  truth.forEach((label, i) => {
    confusion[label]![predicted ? predicted[i]! : label]! += 1;
  });
  const top1 = predicted ? predicted.filter((p, i) => p === truth[i]).length / truth.length : 1;
  const stored: Evaluation = {
    count: truth.length,
    top1,
    top5: 1,
    perClass: [],
    confusion,
    ...(predicted ? { labels: truth, predictions: predicted } : {}),
  };
  await putJson(store, key, stored);
  return top1;
}

async function outcome(
  configuration: string,
  heads: Partial<Record<HeadKind, { key: string; top1: number }>>,
): Promise<ConfigurationOutcome> {
  return {
    configuration,
    summaryKey: `summaries/${configuration}.json`,
    dataset: { name: 'cub', classes: CLASSES, train: 1000, test: IMAGES, skipped: [] },
    backbone: 'resnet50',
    features: { train: 'features/train', test: 'features/test', reused: true },
    heads: Object.entries(heads).map(([kind, { key, top1 }]) => ({
      kind: kind as HeadKind,
      backend: 'wasm',
      headKey: path.dirname(key),
      reusedHead: false,
      training: {
        steps: 1,
        epochsRun: 1,
        stoppedEarly: false,
        resumedFromStep: null,
        history: [],
        bestEpoch: 0,
      },
      evaluation: { count: IMAGES, top1, top5: 1, detailsKey: key },
    })),
  };
}

const run = (sweep: string, finishedAt: string, completed: ConfigurationOutcome[]): SweepResults => ({
  sweep,
  finishedAt,
  completed,
  failed: [],
});

let runs: Record<'first' | 'second' | 'fp16', SweepResults>;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'infodisent-compare-'));
  store = new LocalArtifactStore(dir);
  const head = async (key: string, truth: number[], predicted: number[] | undefined) => ({
    key,
    top1: await evaluation(key, truth, predicted),
  });
  const oldBaseline = await head('heads/baseline/b1/evaluation-t.json', labels, predictions.old);
  const olderInfodisent = await head('heads/infodisent/i1/evaluation-t.json', labels, undefined);
  runs = {
    first: run('paper', '2026-11-01T08:00:00.000Z', [
      await outcome('cub', { baseline: oldBaseline, infodisent: olderInfodisent }),
      await outcome('cars', { baseline: oldBaseline }),
    ]),
    second: run('paper', '2026-11-20T08:00:00.000Z', [
      await outcome('cub', {
        baseline: await head('heads/baseline/b2/evaluation-t.json', labels, predictions.better),
        infodisent: olderInfodisent,
      }),
      await outcome('cars', { baseline: oldBaseline }),
    ]),
    fp16: run('paper-fp16', '2026-11-21T08:00:00.000Z', [
      await outcome('cub', {
        baseline: await head('heads/baseline/b3/evaluation-t.json', labels, predictions.fp16),
        infodisent: await head('heads/infodisent/i3/evaluation-t.json', otherLabels, predictions.otherSet),
      }),
      await outcome('dogs', { baseline: oldBaseline }),
    ]),
  };
  for (const results of Object.values(runs)) await writeSweepResults(store, results);
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const onlyRight = (a: number[], b: number[]) =>
  labels.filter((label, i) => a[i] === label && b[i] !== label).length;

test('two runs of a sweep: the change image by image, McNemar p, and why a head has none', async () => {
  const comparison = await compareRuns(store, runs.first, runs.second);
  assert.deepEqual(
    comparison.heads.map((h) => [h.configuration, h.head]),
    [
      ['cub', 'baseline'],
      ['cub', 'infodisent'],
      ['cars', 'baseline'],
    ],
  );
  const [changed, older, same] = comparison.heads;
  const [b, c] = [
    onlyRight(predictions.old, predictions.better),
    onlyRight(predictions.better, predictions.old),
  ];
  assert.deepEqual(changed!.paired, {
    images: IMAGES,
    onlyFirst: b,
    onlySecond: c,
    difference: (c - b) / IMAGES,
    p: mcnemarExact(b, c),
  });
  assert.ok(changed!.paired!.p < 0.01, `a 10-point gain on 400 images: p = ${changed!.paired!.p}`);
  assert.ok(Math.abs(changed!.top1[1] - changed!.top1[0] - changed!.paired!.difference) < 1e-12);
  assert.equal(older!.paired, null);
  assert.match(older!.unpaired!, /from before predictions were kept/);
  assert.deepEqual(same!.paired, { images: IMAGES, onlyFirst: 0, onlySecond: 0, difference: 0, p: 1 });
  assert.deepEqual([comparison.onlyInFirst, comparison.onlyInSecond], [[], []]);
});

test("a run against the sweep's previous one: the heads that changed, as the report and notifications show them", async () => {
  const runsOfPaper = [runs.first, runs.second];
  assert.equal(
    await sincePreviousRun(store, runsOfPaper, runs.first),
    null,
    'the first run has none before it',
  );
  const since = (await sincePreviousRun(store, runsOfPaper, runs.second))!;
  assert.deepEqual(since, await compareRuns(store, runs.first, runs.second));
  assert.deepEqual(
    since.heads.map((head) => [head.configuration, head.head, headChanged(head)]),
    [
      ['cub', 'baseline', true],
      ['cub', 'infodisent', true], // no predictions to tell: counted as changed, with its reason
      ['cars', 'baseline', false],
    ],
  );
  const table = comparisonTable(since, ['Previous run', 'This run'], since.heads.filter(headChanged));
  assert.deepEqual(
    table.columns.map((c) => c.label),
    [
      'Configuration',
      'Head',
      'Previous run',
      'This run',
      'Change',
      'Only previous run',
      'Only this run',
      'p',
    ],
  );
  assert.equal(table.rows.length, 2);
  assert.equal(table.rows[0]!['p'], since.heads[0]!.paired!.p);
  assert.equal(table.rows[1]!['p'], null);
  const notification = sweepNotification(runs.second, 'report', since);
  assert.deepEqual(
    notification.sincePrevious?.changed.map((c) => [c.configuration, c.head, c.p]),
    [
      ['cub', 'baseline', since.heads[0]!.paired!.p],
      ['cub', 'infodisent', null],
    ],
  );
  assert.match(
    notification.text,
    new RegExp(
      `Since the previous run \\(2026-11-01T08:00:00\\.000Z\\):\\n• cub baseline: [\\d.]+% → [\\d.]+% \\(McNemar p = ${since.heads[0]!.paired!.p.toPrecision(2)}\\)\\n• cub infodisent: 100\\.0% → 100\\.0%\\n`,
    ),
  );
  const unchanged = await compareRuns(store, runs.fp16, runs.fp16);
  assert.match(
    sweepNotification(runs.fp16, 'report', unchanged).text,
    /\nNo head's predictions changed since the previous run \(2026-11-21T08:00:00\.000Z\)\.\n/,
  );
});

test('two sweeps: heads evaluated on other test images are not paired; configurations only one has are listed', async () => {
  const comparison = await compareRuns(store, runs.second, runs.fp16);
  assert.deepEqual(
    comparison.heads.map((h) => [h.head, h.paired?.onlyFirst ?? h.unpaired]),
    [
      ['baseline', onlyRight(predictions.better, predictions.fp16)],
      ['infodisent', 'an evaluation from before predictions were kept (run the sweep again to redo it)'],
    ],
  );
  assert.deepEqual([comparison.onlyInFirst, comparison.onlyInSecond], [['cars'], ['dogs']]);
  const otherSet = await compareRuns(store, runs.fp16, runs.fp16);
  assert.equal(otherSet.heads[1]!.paired?.p, 1, 'a run against itself');
  const mixed = await compareRuns(store, runs.fp16, {
    ...runs.fp16,
    completed: [
      { ...runs.fp16.completed[0]!, heads: [{ ...runs.fp16.completed[0]!.heads[1]!, kind: 'baseline' }] },
    ],
  });
  assert.equal(mixed.heads[0]!.unpaired, 'evaluated on other test images');
});

test('the CLI names runs as SWEEP, SWEEP@N and SWEEP@TIME, and says which reference it cannot resolve', async () => {
  const shown = await runCli(['compare', 'paper@1', 'paper', '--store', dir]);
  assert.equal(shown.code, 0, shown.stderr);
  assert.match(shown.stdout, /^first: 'paper' \(finished 2026-11-01T08:00:00\.000Z\)$/m);
  assert.match(shown.stdout, /^second: 'paper' \(finished 2026-11-20T08:00:00\.000Z\)$/m);
  const b = onlyRight(predictions.old, predictions.better);
  const c = onlyRight(predictions.better, predictions.old);
  const p = mcnemarExact(b, c);
  const printedP = p < 0.00005 ? '< 0.0001' : p.toFixed(4);
  assert.match(
    shown.stdout,
    new RegExp(
      `^cub +baseline +[\\d.]+ +[\\d.]+ +[\\d.]+ +${b} +${c} +${printedP.replace('.', '\\.')}$`,
      'm',
    ),
  );
  assert.match(shown.stdout, /^no p for cub infodisent: an evaluation from before predictions were kept/m);
  const out = path.join(dir, 'supplement');
  const json = await runCli([
    ...['compare', 'paper@2026-11-0', 'paper-fp16', '--store', dir, '--json'],
    ...['--out', out, '--format', 'csv,tex'],
  ]);
  const parsed = JSON.parse(json.stdout) as {
    first: { finishedAt: string };
    onlyInSecond: string[];
    files: string[];
  };
  assert.equal(parsed.first.finishedAt, '2026-11-01T08:00:00.000Z');
  assert.deepEqual(parsed.onlyInSecond, ['dogs']);
  // The table for a paper's supplement, in the formats asked.
  assert.deepEqual(parsed.files, [path.join(out, 'comparison.csv'), path.join(out, 'comparison.tex')]);
  const csv = await readFile(path.join(out, 'comparison.csv'), 'utf8');
  assert.match(
    csv,
    /^configuration,head,first_top1,second_top1,change,only_first,only_second,p\r\ncub,baseline,/,
  );
  assert.match(await readFile(path.join(out, 'comparison.tex'), 'utf8'), /\\begin\{tabular\}/);
  const ambiguous = await runCli(['compare', 'paper@2026-11', 'paper', '--store', dir]);
  assert.equal(ambiguous.code, 1);
  assert.match(
    ambiguous.stderr,
    /'paper@2026-11': 2 stored runs of 'paper' finished at 2026-11…; name one by its number or a longer time \(1: 2026-11-01T08:00:00\.000Z, 2: 2026-11-20T08:00:00\.000Z\)/,
  );
  const missing = await runCli(['compare', 'paper@3', 'nope', '--store', dir]);
  assert.match(missing.stderr, /'paper@3': sweep 'paper' has 2 stored runs/);
});

test('the comparison table holds clean percentages: no floating-point noise in its CSV or JSON', () => {
  // 100 * (0.86 - 0.93) is -7.000000000000006 and 100 * 0.56 is 56.00000000000001 in floating point.
  const comparison: RunComparison = {
    first: { sweep: 'a', finishedAt: '2026-11-01T08:00:00.000Z' },
    second: { sweep: 'b', finishedAt: '2026-11-02T08:00:00.000Z' },
    heads: [{ configuration: 'cub', head: 'baseline', top1: [0.93, 0.86], paired: null }],
    onlyInFirst: [],
    onlyInSecond: [],
  };
  const table = comparisonTable(comparison);
  assert.deepEqual(
    [table.rows[0]!['first_top1'], table.rows[0]!['second_top1'], table.rows[0]!['change']],
    [93, 86, -7],
  );
  assert.equal(tableCsv(table).split('\r\n')[1], 'cub,baseline,93,86,-7,,,');
  assert.equal(percentOf(0.56), 56);
  // Only noise is removed: a value that is no short decimal keeps full precision.
  assert.equal(roundDerived(1 / 3), 1 / 3);
  assert.equal(percentOf(7 / 9), 100 * (7 / 9));
  assert.equal(percentChange(0.9998, 0.9999), 0.01);
  // A seeds' deviation of pure noise (identical runs) is 0 at the scale of the values.
  assert.equal(roundDerived(4e-15, 56), 0);
  assert.equal(roundDerived(Number.NaN), Number.NaN);
});
