/**
 * A researcher's own image tree, end to end through `infodisent run`: class folders with no train/test split
 * (testFraction), a file in a format torchvision reads and sharp does not, and a truncated JPEG, run with
 * skipInvalid: the run completes without them and says which it left out.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import {
  type ConfigurationOutcome,
  resultsMarkdown,
  type SweepResults,
  skippedSentence,
} from '../core/pipeline/results';
import { repoRoot } from '../infra/paths';
import { runCli } from './support/cli';
import { writeImage } from './support/dataset-trees';

let home: string;
before(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), 'infodisent-own-dataset-'));
});
after(() => rm(home, { recursive: true, force: true }));

test('class folders without a split, with unreadable files, run with skipInvalid and list what they left out', async () => {
  const root = path.join(home, 'birds');
  for (const [c, name] of ['finch', 'heron', 'wren'].entries())
    for (let i = 0; i < 6; i++) await writeImage(path.join(root, name, `${i}.jpg`), 96, 80, 10 * c + i);
  const bitmap = path.join(root, 'heron', 'scan.bmp');
  await writeFile(bitmap, 'BM');
  const truncated = path.join(root, 'wren', '5.jpg');
  const whole = await readFile(truncated);
  await writeFile(truncated, whole.subarray(0, whole.length / 2));

  const sweep = JSON.parse(await readFile(path.join(repoRoot(), 'experiments', 'tiny.json'), 'utf8'));
  sweep.name = 'birds';
  sweep.configurations[0].name = 'birds-mobilenetv2';
  sweep.configurations[0].dataset = { kind: 'class-folders', name: 'birds', root, testFraction: 0.34 };
  const file = path.join(home, 'birds.json');
  await writeFile(file, JSON.stringify(sweep));
  const stateDir = path.join(home, 'state');

  // Without skipInvalid the BMP stops it before any work, named (and plan says the same).
  const refused = await runCli(['plan', file], { INFODISENT_HOME: stateDir });
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stdout + refused.stderr, new RegExp(`${bitmap}: unsupported image format '\\.bmp'`));

  sweep.configurations[0].dataset.skipInvalid = true;
  await writeFile(file, JSON.stringify(sweep));
  const run = await runCli(['run', file, '--home', stateDir], {}, 300_000);
  assert.equal(run.code, 0, run.stderr);
  assert.match(
    run.stdout,
    /^1 configuration left out 2 files that could not be read \(skipInvalid\): results\.md lists them$/m,
  );

  const results = JSON.parse(
    await readFile(path.join(stateDir, 'store', 'results', 'birds', 'results.json'), 'utf8'),
  ) as SweepResults;
  const [outcome] = results.completed;
  // round(6 x 0.34) = 2 test images a class; the heron's BMP and the wren's truncated JPEG left out.
  assert.deepEqual({ train: outcome?.dataset.train, test: outcome?.dataset.test }, { train: 12, test: 6 });
  assert.deepEqual(
    outcome?.dataset.skipped.map((skipped) => skipped.path),
    ['heron/scan.bmp', 'wren/5.jpg'],
  );
  assert.equal(outcome?.dataset.skippedCount, 2);
  assert.ok(outcome?.dataset.skipped[1]?.reason.startsWith(`${truncated}: cannot decode image`));
  const markdown = await readFile(path.join(stateDir, 'store', 'results', 'birds', 'results.md'), 'utf8');
  assert.match(
    markdown,
    /## Files left out\n\n.*\n\n- \*\*birds-mobilenetv2\*\*: 2 files of dataset `birds`\n/,
  );
  assert.ok(markdown.includes(`  - ${truncated}: cannot decode image`), markdown);
  const page = await readFile(
    path.join(stateDir, 'store', 'reports', 'birds', 'configurations', 'birds-mobilenetv2', 'index.html'),
    'utf8',
  );
  assert.ok(page.includes('2 files of the dataset could not be read and were left out'), page);
  const listing = await runCli(['store', 'ls', '--store', path.join(stateDir, 'store')]);
  assert.equal(listing.code, 0, listing.stderr);
  assert.match(
    listing.stdout,
    / train +11 \(1 unreadable left out\) /,
    'the train set, which held the truncated JPEG',
  );
});

test('results.md lists the first files left out and counts them all, as many as the results carry', () => {
  const skipped = Array.from({ length: 50 }, (_, i) => ({
    path: `x/${i}.jpg`,
    reason: `/d/x/${i}.jpg: cannot decode image: bad`,
  }));
  const outcome = {
    configuration: 'scraped-resnet50',
    summaryKey: 'summaries/s',
    dataset: { name: 'scraped', classes: 3, train: 9000, test: 1000, skipped, skippedCount: 5000 },
    backbone: 'resnet50',
    features: { train: 'features/a', test: 'features/b', reused: false },
    heads: [],
  } satisfies ConfigurationOutcome;
  const results: SweepResults = {
    sweep: 's',
    finishedAt: '2026-11-27T00:00:00Z',
    completed: [outcome],
    failed: [],
  };
  const markdown = resultsMarkdown(results);
  assert.match(markdown, /- \*\*scraped-resnet50\*\*: 5000 files of dataset `scraped`\n/);
  assert.equal(markdown.split('\n').filter((line) => line.startsWith('  - /d/x/')).length, 20);
  assert.match(markdown, / {2}- … and 4980 more \(results\.json lists 30 of them\)\n/);
  assert.equal(
    skippedSentence(results),
    '1 configuration left out 5000 files that could not be read (skipInvalid): results.md lists them',
  );
});
