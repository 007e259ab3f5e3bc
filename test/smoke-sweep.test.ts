import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { runEmbedded } from '../client/commands/run';
import { loadSweepFile, type Sweep } from '../core/config/experiment';
import type { Evaluation } from '../core/method/evaluate';
import type { SweepResults } from '../core/pipeline/results';
import { repoRoot } from '../infra/paths';

// The whole path for real: a Temporal dev server, the in-process worker on both queues, the
// bundled MobileNetV2, generated images, the local store.
let home: string;
let sweep: Sweep;

before(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), 'infodisent-smoke-'));
  sweep = await loadSweepFile(path.join(repoRoot(), 'experiments', 'tiny.json'));
});

after(async () => {
  await rm(home, { recursive: true, force: true });
});

test('a tiny sweep runs through Temporal and both heads beat chance', { timeout: 600_000 }, async () => {
  const { results, resultFiles } = await runEmbedded(sweep, { home, persistent: false, log: () => {} });
  assert.deepEqual(results.failed, []);
  assert.equal(results.completed.length, 1);
  const outcome = results.completed[0]!;
  assert.equal(outcome.dataset.classes, 4);
  assert.equal(outcome.features.reused, false);
  assert.deepEqual(
    outcome.heads.map((h) => h.kind),
    ['baseline', 'infodisent'],
  );
  for (const head of outcome.heads) {
    assert.equal(head.backend, 'wasm');
    assert.equal(head.evaluation.count, 16);
    assert.ok(head.training.steps > 0, `${head.kind} trained no steps`);
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
  for (const file of resultFiles) assert.ok(existsSync(file), `${file} was not written`);
  const written = JSON.parse(
    readFileSync(resultFiles.find((f) => f.endsWith('.json'))!, 'utf8'),
  ) as SweepResults;
  assert.equal(written.completed[0]!.heads[1]!.evaluation.top1, outcome.heads[1]!.evaluation.top1);
  const markdown = readFileSync(resultFiles.find((f) => f.endsWith('.md'))!, 'utf8');
  assert.match(markdown, /\| infodisent \| wasm \|/);
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
        `\\| parts-mobilenetv2-tiny \\| ${head.kind} \\| ${f.purity.toFixed(3)} \\| .* \\| ${(100 * f.stability).toFixed(1)} \\| 16 \\|`,
      ),
    );
  }
});

test('a second run, now with published figures, reuses the cached features and heads and prints them', {
  timeout: 300_000,
}, async () => {
  // Published figures annotate the tables only: nothing is computed again for them.
  const reported = { source: 'a published run', infodisent: { top1: 87.5 } };
  const annotated = { ...sweep, configurations: [{ ...sweep.configurations[0]!, reported }] };
  const { results } = await runEmbedded(annotated, { home, persistent: false, log: () => {} });
  const outcome = results.completed[0]!;
  assert.equal(outcome.features.reused, true);
  assert.ok(outcome.heads.every((head) => head.reusedHead));
  assert.deepEqual(outcome.reported, reported);
  const table = readFileSync(
    path.join(home, 'store', 'reports', sweep.name, 'tables', 'accuracy.md'),
    'utf8',
  );
  assert.match(table, /\| Paper InfoDisent top-1 \|\n/);
  assert.match(table, /\| 87\.5 \|\n/);
  assert.match(table, /Paper: as reported by a published run\.$/m);
});
