import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { runEmbedded, sweepWorkflowId } from '../client/commands/run';
import { parseSweep, type Sweep } from '../core/config/experiment';
import type { Evaluation } from '../core/method/evaluate';
import type { RunComparison } from '../core/pipeline/compare';
import { storeInventory } from '../core/pipeline/inventory';
import { type SweepResults, sweepRuns } from '../core/pipeline/results';
import { resultsHistory } from '../core/report/history';
import { LocalArtifactStore } from '../core/store/local-store';
import { freePort, startLocalTemporal } from '../infra/dev-server';
import { repoRoot } from '../infra/paths';
import { resolveTool } from '../infra/tools';
import { DEFAULT_TASK_QUEUES } from '../workflows/progress';
import { sweepWorkflow } from '../workflows/sweep';
import { runCli } from './support/cli';
import { parseCsv } from './support/csv';

// The whole path for real: a Temporal dev server (its history kept in the home, as `infodisent run`
// keeps it), the in-process worker on both queues, the bundled MobileNetV2, generated images, the
// local store.
let home: string;
let sweep: Sweep;

before(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), 'infodisent-smoke-'));
  // The tiny sweep with two seeds: two configurations that read the same features, extracted by two
  // processes (features.processes, not part of the cache key).
  const file = path.join(repoRoot(), 'experiments', 'tiny.json');
  const document = JSON.parse(readFileSync(file, 'utf8')) as { configurations: Record<string, unknown>[] };
  const { seed, ...configuration } = document.configurations[0]!;
  const features = { ...(configuration.features as object), processes: 2 };
  sweep = parseSweep(
    { ...document, configurations: [{ ...configuration, features, seeds: [seed, 4] }] },
    file,
  );
});

const RUNS = ['parts-mobilenetv2-tiny-seed3', 'parts-mobilenetv2-tiny-seed4'];

after(async () => {
  await rm(home, { recursive: true, force: true });
});

/** Leaves in the home a run of another version of the sweep (one seed only), cut off before any work. */
async function startStaleRun(): Promise<void> {
  const stale = await startLocalTemporal({ stateDir: home });
  try {
    await stale.client.workflow.start(sweepWorkflow, {
      workflowId: sweepWorkflowId(sweep),
      taskQueue: DEFAULT_TASK_QUEUES.cpu,
      args: [
        {
          sweep: { ...sweep, configurations: [sweep.configurations[1]!] },
          queues: DEFAULT_TASK_QUEUES,
          parallelism: 2,
        },
      ],
    });
  } finally {
    await stale.stop();
  }
}

test('a tiny sweep with two seeds runs through Temporal and all heads beat chance', {
  timeout: 600_000,
}, async () => {
  // A run of another version of the sweep was cut off in this home: this run replaces it.
  await startStaleRun();
  const log: string[] = [];
  const { results, resultFiles } = await runEmbedded(sweep, { home, log: (line) => log.push(line) });
  assert.ok(
    log.some((line) =>
      /was running as sweep-tiny with other configurations or settings: stopped it/.test(line),
    ),
    log.join('\n'),
  );
  assert.deepEqual(results.failed, []);
  assert.deepEqual(
    results.completed.map((o) => [o.configuration, o.seed, o.repeatOf]),
    RUNS.map((name, i) => [name, [3, 4][i], 'parts-mobilenetv2-tiny']),
  );
  // Both seeds read the same features: run one after the other, the first extracts them, the second finds them.
  assert.deepEqual(
    results.completed.map((o) => o.features.reused),
    [false, true],
  );
  assert.equal(results.completed[0]!.features.train, results.completed[1]!.features.train);
  // What computing them took is kept with them: the seed that found them reports the first one's record.
  const [extracted, found] = results.completed.map((o) => o.features.compute);
  assert.deepEqual(found, extracted);
  const { dataset } = results.completed[0]!;
  assert.deepEqual(
    [extracted?.train?.name, extracted?.train?.items, extracted?.test?.items],
    ['onnxruntime cpu', dataset.train, dataset.test],
  );
  // Each seed trains heads of its own.
  const [first, second] = results.completed.map((o) => o.heads.map((h) => h.training.history[0]!.meanLoss));
  for (const [i, loss] of first!.entries()) assert.notEqual(loss, second![i]);
  for (const outcome of results.completed) {
    assert.equal(outcome.dataset.classes, 4);
    assert.deepEqual(
      outcome.heads.map((h) => h.kind),
      ['baseline', 'infodisent'],
    );
    for (const head of outcome.heads) {
      assert.equal(head.backend, 'wasm');
      assert.equal(head.evaluation.count, 16);
      assert.ok(head.training.steps > 0, `${head.kind} trained no steps`);
      assert.equal(head.compute?.name, 'tfjs wasm');
      assert.equal(head.compute.items, head.training.steps);
      assert.ok(
        head.compute.seconds > 0 && head.compute.seconds === head.training.seconds,
        `${head.kind} seconds`,
      );
      // chance is 25%: a head that learned anything from 32 images scores well above it
      assert.ok(head.evaluation.top1 > 0.4, `${head.kind} top-1 ${head.evaluation.top1} is near chance`);
      // Per-class accuracies and confusion counts stay in the store, out of the workflow's payloads.
      const details = JSON.parse(
        readFileSync(path.join(home, 'store', ...head.evaluation.detailsKey.split('/')), 'utf8'),
      ) as Evaluation;
      assert.equal(details.top1, head.evaluation.top1);
      assert.equal(details.perClass.length, 4);
      assert.equal(
        details.confusion.flat().reduce((sum, n) => sum + n, 0),
        16,
      );
    }
  }
  for (const file of resultFiles) assert.ok(existsSync(file), `${file} was not written`);
  const written = JSON.parse(
    readFileSync(resultFiles.find((f) => f.endsWith('.json'))!, 'utf8'),
  ) as SweepResults;
  assert.equal(
    written.completed[0]!.heads[1]!.evaluation.top1,
    results.completed[0]!.heads[1]!.evaluation.top1,
  );
  const markdown = readFileSync(resultFiles.find((f) => f.endsWith('.md'))!, 'utf8');
  assert.match(markdown, /\| infodisent \| wasm \|/);
  assert.match(
    markdown,
    /## Compute\n\nComputing these results took \w+: feature extraction \w+ \(onnxruntime cpu on .+\), head training \w+ \(tfjs wasm on .+\), explanations and analyses \w+ \(tfjs wasm on .+\)\./,
  );
  assert.match(
    markdown,
    /\| parts-mobilenetv2-tiny-seed4 \| train infodisent \| \w+ \| — \| [\d.]+ \| tfjs wasm \|/,
  );
  // The explain stage's faithfulness metrics, stability included (all 16 test images noised), in both files.
  for (const head of written.completed[0]!.heads) {
    const f = head.faithfulness!;
    assert.ok(
      f.purity !== null && f.pointing !== null && f.consistency !== null,
      `${head.kind}: ${JSON.stringify(f)}`,
    );
    assert.ok(f.stability !== null && f.stability >= 0 && f.stability <= 1, `${head.kind} stability`);
    assert.equal(f.stabilityImages, 16);
    assert.match(
      markdown,
      new RegExp(
        `\\| ${RUNS[0]} \\| ${head.kind} \\| ${f.purity.toFixed(3)} \\| .* \\| ${(100 * f.stability).toFixed(1)} \\| 16 \\|`,
      ),
    );
  }
  // The paper's tables print the two seeds as one row.
  const accuracy = readFileSync(
    path.join(home, 'store', 'reports', sweep.name, 'tables', 'accuracy.md'),
    'utf8',
  );
  assert.match(accuracy, /^\| Dataset \| Backbone \| Seeds \|/m);
  assert.match(accuracy, /^\| parts\S* \| nsfwjs-mobilenet-v2 \| 2 \| \d+\.\d ± \d+\.\d \|/m);
  // Each class's top-1 for both heads, beside the paper's tables: the evaluations' own per-class accuracy.
  const classRows = parseCsv(
    readFileSync(path.join(home, 'store', 'reports', sweep.name, 'tables', 'classes.csv'), 'utf8'),
  );
  assert.equal(classRows.length, 1 + RUNS.length * 4);
  for (const outcome of results.completed) {
    const rows = classRows.filter((row) => row[0] === outcome.configuration);
    for (const [column, kind] of [
      [6, 'infodisent'],
      [7, 'baseline'],
    ] as const) {
      const { detailsKey } = outcome.heads.find((head) => head.kind === kind)!.evaluation;
      const details = JSON.parse(
        readFileSync(path.join(home, 'store', ...detailsKey.split('/')), 'utf8'),
      ) as Evaluation;
      const printed = rows.map((row) => Number(row[column]) / 100);
      for (const [label, value] of details.perClass.entries())
        assert.ok(
          Math.abs(printed[label]! - value) < 1e-12,
          `${outcome.configuration} ${kind} class ${label}`,
        );
    }
  }
  // Each run's heads compared image by image, from the predictions their evaluations keep.
  const significance = parseCsv(
    readFileSync(path.join(home, 'store', 'reports', sweep.name, 'tables', 'significance.csv'), 'utf8'),
  );
  assert.equal(significance.length, 1 + RUNS.length);
  const [header] = significance;
  for (const outcome of results.completed) {
    const row = significance.find((r) => r[0] === outcome.configuration)!;
    const value = (name: string) => Number(row[header!.indexOf(name)]);
    const evaluation = (kind: 'baseline' | 'infodisent') =>
      JSON.parse(
        readFileSync(
          path.join(
            home,
            'store',
            ...outcome.heads.find((head) => head.kind === kind)!.evaluation.detailsKey.split('/'),
          ),
          'utf8',
        ),
      ) as Evaluation;
    const [baseline, infodisent] = [evaluation('baseline'), evaluation('infodisent')];
    assert.deepEqual(infodisent.labels, baseline.labels, 'both heads evaluated on the same images');
    assert.equal(baseline.predictions!.length, 16);
    const right = (e: Evaluation, i: number) => e.predictions![i] === e.labels![i];
    const only = (a: Evaluation, b: Evaluation) =>
      a.labels!.filter((_, i) => right(a, i) && !right(b, i)).length;
    assert.equal(value('test_images'), 16);
    assert.equal(value('baseline_only'), only(baseline, infodisent));
    assert.equal(value('infodisent_only'), only(infodisent, baseline));
    assert.ok(value('mcnemar_p') > 0 && value('mcnemar_p') <= 1);
    assert.ok(
      value('baseline_top1_low') <= value('baseline_top1') &&
        value('baseline_top1') <= value('baseline_top1_high'),
    );
  }
});

test('a second run, now with published figures, reuses the cached features and heads and prints them', {
  timeout: 300_000,
}, async () => {
  // Evaluations stored before predictions were kept: redone from the stored heads, with the same figures.
  const evaluations = readdirSync(path.join(home, 'store'), { recursive: true, encoding: 'utf8' })
    .filter((file) => /evaluation-[^/]*\.json$/.test(file))
    .map((file) => path.join(home, 'store', file));
  assert.equal(evaluations.length, 2 * RUNS.length);
  const before = evaluations.map((file) => JSON.parse(readFileSync(file, 'utf8')) as Evaluation);
  for (const [i, file] of evaluations.entries()) {
    const { labels: _labels, predictions: _predictions, ...older } = before[i]!;
    writeFileSync(file, JSON.stringify(older));
  }
  // Published figures annotate the tables only: nothing is computed again for them.
  const reported = { source: 'a published run', infodisent: { top1: 87.5 } };
  const annotated = { ...sweep, configurations: sweep.configurations.map((c) => ({ ...c, reported })) };
  // A webhook that cannot be reached does not fail the run: the notification is the sweep's last, optional word.
  const notifyUrl = `http://127.0.0.1:${await freePort()}/hook`;
  const { results } = await runEmbedded(annotated, { home, log: () => {}, notifyUrl });
  assert.deepEqual(results.failed, []);
  for (const outcome of results.completed) {
    assert.equal(outcome.features.reused, true);
    assert.ok(outcome.heads.every((head) => head.reusedHead));
    assert.deepEqual(outcome.reported, reported);
  }
  for (const [i, file] of evaluations.entries())
    assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), before[i], `${file} was redone as it was`);
  const table = readFileSync(
    path.join(home, 'store', 'reports', sweep.name, 'tables', 'accuracy.md'),
    'utf8',
  );
  assert.match(table, /\| Paper InfoDisent top-1 \|\n/);
  assert.match(table, /\| 87\.5 \|\n/);
  assert.match(table, /Paper: as reported by a published run\./);

  // The store's inventory: both splits' features and the four heads, all used by this sweep.
  const store = new LocalArtifactStore(path.join(home, 'store'));
  const inventory = await storeInventory(store);
  assert.deepEqual(
    inventory.sweeps.map((s) => [s.sweep, s.completed, s.failed, s.runs]),
    [[sweep.name, 2, 0, 2]],
  );
  // Both runs are kept: the same top-1 twice (everything was reused), as the CLI's history shows.
  const history = resultsHistory(await sweepRuns(store, sweep.name));
  assert.equal(history.runs.length, 2);
  assert.deepEqual(
    history.rows.map((row) => [row.configuration, row.head, row.top1[0] === row.top1[1]]),
    RUNS.flatMap((name) => [
      [name, 'baseline', true],
      [name, 'infodisent', true],
    ]),
  );
  const index = readFileSync(path.join(home, 'store', 'reports', sweep.name, 'index.html'), 'utf8');
  // Cached artifacts keep what computing them took: the report still says it, and lists each.
  assert.match(
    index,
    /<h2 id="compute">Compute<\/h2>\n<p>Computing these results took \w+: feature extraction/,
  );
  const compute = parseCsv(
    readFileSync(path.join(home, 'store', 'reports', sweep.name, 'tables', 'compute.csv'), 'utf8'),
  );
  assert.deepEqual(
    compute.slice(1).map((row) => row.slice(0, 2)),
    RUNS.flatMap((name) =>
      ['extract train', 'extract test', 'train baseline', 'train infodisent', 'explain'].map((stage) => [
        name,
        stage,
      ]),
    ),
  );
  const historyHtml = /<table id="table-history">[\s\S]*?<\/table>/.exec(index)?.[0] ?? '';
  assert.equal(historyHtml.match(/<tr><td>/g)?.length, 4, "the report's history: two heads of two seeds");
  // Everything was reused: no head's predictions changed since the previous run, as the report says.
  assert.match(
    index,
    /<p id="since-previous">No head's predictions changed since the previous run \(finished [^)]+\)\.<\/p>/,
  );
  // A prune of the embedded default (no --address, no --store) with no Temporal up reads the history the runs
  // kept in their home, where a run cut off now still runs; everything in the store is the sweep's.
  await startStaleRun();
  const pruned = await runCli(['store', 'prune', '--json'], {
    INFODISENT_HOME: home,
    TEMPORAL_CLI: resolveTool('temporal'),
  });
  assert.equal(pruned.code, 0, pruned.stderr);
  const plan = JSON.parse(pruned.stdout) as {
    runningWorkflows: string[];
    askedOf: string;
    remove: unknown[];
  };
  assert.deepEqual(plan.runningWorkflows, [sweepWorkflowId(sweep)]);
  assert.equal(plan.askedOf, `the history in ${home}`);
  assert.deepEqual(plan.remove, []);
  const shown = await runCli(['store', 'history', sweep.name, '--store', store.root]);
  assert.match(shown.stdout, /^sweep 'tiny': 2 stored runs$/m);
  assert.match(shown.stdout, new RegExp(`^${RUNS[1]} +infodisent +(\\d+\\.\\d) +\\1 +0\\.0$`, 'm'));
  // The two runs image by image: the same heads, so the same predictions on every test image.
  const compared = await runCli([
    'compare',
    `${sweep.name}@1`,
    `${sweep.name}@2`,
    '--store',
    store.root,
    '--json',
  ]);
  assert.equal(compared.code, 0, compared.stderr);
  const comparison = JSON.parse(compared.stdout) as RunComparison;
  assert.equal(comparison.heads.length, 2 * RUNS.length);
  for (const head of comparison.heads)
    assert.deepEqual(head.paired, { images: 16, onlyFirst: 0, onlySecond: 0, difference: 0, p: 1 });
  assert.deepEqual(
    inventory.features
      .map((f) => [f.complete?.split, f.complete?.images, f.complete?.bytes, f.usedBy])
      .sort(),
    [
      ['test', 16, 16 * 7 * 7 * 1280 * 4, [sweep.name]],
      ['train', 48, 48 * 7 * 7 * 1280 * 4, [sweep.name]],
    ],
  );
  assert.deepEqual(inventory.heads.map((h) => [h.kind, h.finished, h.usedBy]).sort(), [
    ['baseline', true, [sweep.name]],
    ['baseline', true, [sweep.name]],
    ['infodisent', true, [sweep.name]],
    ['infodisent', true, [sweep.name]],
  ]);
});
