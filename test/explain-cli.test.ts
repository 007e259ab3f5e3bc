import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import type { ExplanationJson } from '../client/commands/explain';
import type { Configuration } from '../core/config/experiment';
import type { ConfigurationPlan } from '../core/pipeline/plan';
import { writeSweepResults } from '../core/pipeline/results';
import { explainedHeadKey, explainStage } from '../core/pipeline/stages';
import type { ConfigurationSummary } from '../core/report';
import { getJson, putJson } from '../core/store/artifact-store';
import { LocalArtifactStore } from '../core/store/local-store';
import { type CliOutcome as Outcome, runCli } from './support/cli';
import { computeRecordOf, outcomeWithCompute } from './support/outcomes';
import { type TrainedStore, trainStore, writeMicroSweep } from './support/trained-store';

// `infodisent explain` as a user runs it: the CLI binary on real image files, with heads the pipeline's
// stages trained into a real store (the bundled MobileNetV2 on wasm).

let home: string;
let sweepFile: string;
let configuration: Configuration;
let trained: TrainedStore;
let summary: ConfigurationSummary;

before(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), 'infodisent-explain-'));
  ({ file: sweepFile, configuration } = await writeMicroSweep(home));
  trained = await trainStore(home, configuration);
  summary = (await getJson<ConfigurationSummary>(trained.context.store, trained.explained.summaryKey))!;
});

after(async () => {
  await rm(home, { recursive: true, force: true });
});

function cli(args: string[], store = path.join(home, 'store')): Promise<Outcome> {
  return runCli([
    'explain',
    ...args,
    '--config',
    sweepFile,
    '--store',
    store,
    '--data-dir',
    path.join(home, 'datasets'),
  ]);
}

function parsed(outcome: Outcome): ExplanationJson {
  assert.equal(outcome.code, 0, `exit ${outcome.code}: ${outcome.stderr}`);
  return JSON.parse(outcome.stdout) as ExplanationJson;
}

const close = (a: number, b: number, what: string) =>
  assert.ok(Math.abs(a - b) <= 1e-4 * Math.max(1, Math.abs(a), Math.abs(b)), `${what}: ${a} vs ${b}`);

/** SPEC section 1: a_kc = W_kc p_c, channels by descending positive a_kc, logit_k = sum_c a_kc + b_k. */
function checkExplanation(image: ExplanationJson['images'][number], classes: string[]): void {
  assert.ok(Number.isInteger(image.predicted) && image.predicted >= 0 && image.predicted < classes.length);
  assert.equal(image.predictedClass, classes[image.predicted]);
  assert.equal(image.logits.length, classes.length);
  assert.equal(Math.max(...image.logits), image.logits[image.predicted]);
  close(image.positiveTotal + image.negativeTotal + image.bias, image.logits[image.predicted]!, 'logit');
  assert.ok(image.channels.length > 0 && image.channels.length <= 5);
  let shown = 0;
  for (const [i, channel] of image.channels.entries()) {
    assert.ok(channel.contribution > 0, `channel ${channel.channel} contributes positively`);
    if (i > 0)
      assert.ok(channel.contribution <= image.channels[i - 1]!.contribution, 'sorted by contribution');
    close(channel.contribution, channel.weight * channel.pooled, `a of channel ${channel.channel}`);
    close(channel.share, channel.contribution / image.positiveTotal, 'share');
    assert.ok(channel.prototypes.length > 0 && channel.prototypes.length <= 5);
    for (const prototype of channel.prototypes) assert.ok(existsSync(prototype.file), prototype.file);
    shown += channel.contribution;
  }
  assert.ok(shown <= image.positiveTotal * (1 + 1e-6), 'the top channels are part of the positive evidence');
  assert.equal(image.heatmap.length, 49);
}

/** The first test image of each class: the ones the explain stage explained in the stored summary. */
async function explainedTestImages(): Promise<string[]> {
  const manifest = JSON.parse(await readFile(trained.dataset.manifestPath, 'utf8')) as {
    root: string;
    items: { path: string; split: string; label: number }[];
  };
  const tests = manifest.items.filter((item) => item.split === 'test');
  return [0, 1].map((label) => path.join(manifest.root, tests.find((item) => item.label === label)!.path));
}

test('explain --json --out: the InfoDisent prediction, its top channels, prototypes and a panel PNG', {
  timeout: 120_000,
}, async () => {
  const files = await explainedTestImages();
  const out = path.join(home, 'panels');
  const result = parsed(await cli([...files, '--json', '--out', out]));
  assert.equal(result.configuration, configuration.name);
  assert.equal(result.head, 'infodisent');
  assert.equal(result.headKey, trained.heads.infodisent.key);
  assert.equal(result.classes.length, 3);
  assert.deepEqual(
    result.images.map((image) => image.file),
    files,
  );
  // Both files are named 0000.png (in their class folders): each gets a panel of its own.
  assert.deepEqual(
    result.images.map((image) => path.basename(image.panel!)),
    ['0000.explanation.png', '0000-2.explanation.png'],
  );
  const stored = summary.heads.infodisent!.explanations!;
  for (const image of result.images) {
    checkExplanation(image, result.classes);
    // The backbone ran on the file as extraction prepared it: the explain stage's explanation of the same
    // test image, from the stored features, is the same.
    const same = stored.explanations.find((e) => path.join(result.datasetRoot, e.path) === image.file)!;
    assert.equal(image.predicted, same.predicted);
    for (const [k, logit] of image.logits.entries()) close(logit, same.logits[k]!, `logit ${k}`);
    assert.deepEqual(
      image.channels.map((c) => [c.channel, c.prototypes.map((p) => p.path)]),
      same.channels.map((c) => [c.channel, c.prototypes.map((p) => p.path)]),
    );

    assert.equal(path.dirname(image.panel!), out);
    const { width, height } = await sharp(image.panel!).metadata();
    // explanationPanelSvg's layout: 5 prototype columns, one 102 px row per channel beside two 200 px image blocks.
    assert.equal(width, 30 + 220 + 190 + 5 * 102 - 6);
    assert.equal(height, 20 + 40 + Math.max(2 * 200 + 10, image.channels.length * 102));
    const { data } = await sharp(image.panel!).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    assert.ok(new Set(data).size > 50, 'the panel is not blank');
  }
});

test('explain --head baseline, in text: the prediction, channels and prototype files', {
  timeout: 120_000,
}, async () => {
  const [file] = await explainedTestImages();
  const [text, json] = await Promise.all([
    cli([file!, '--head', 'baseline', '--top', '3']),
    cli([file!, '--head', 'baseline', '--top', '3', '--json']),
  ]);
  const result = parsed(json);
  assert.equal(result.headKey, trained.heads.baseline.key);
  const [image] = result.images;
  checkExplanation(image!, result.classes);
  assert.equal(image!.channels.length, 3);
  assert.equal(text.code, 0, text.stderr);
  assert.match(
    text.stdout,
    new RegExp(
      `predicted '${result.classes[image!.predicted]}' .* by the baseline head of '${configuration.name}'`,
    ),
  );
  for (const channel of image!.channels) {
    assert.match(
      text.stdout,
      new RegExp(`channel ${channel.channel}: a = ${channel.contribution.toFixed(3)}`),
    );
    for (const prototype of channel.prototypes) assert.ok(text.stdout.includes(prototype.file));
  }
});

test('explain stops with a clear error for a missing or corrupt image and for a store without a trained head', {
  timeout: 120_000,
}, async () => {
  const corrupt = path.join(home, 'corrupt.png');
  await writeFile(corrupt, 'not an image');
  const missing = path.join(home, 'missing.png');
  // A store with the features but no trained head.
  const untrained = path.join(home, 'untrained');
  await cp(path.join(home, 'store', 'features'), path.join(untrained, 'features'), { recursive: true });
  const [file] = await explainedTestImages();
  const [ofMissing, ofCorrupt, ofUntrained] = await Promise.all([
    cli([file!, missing]),
    cli([corrupt]),
    cli([file!], untrained),
  ]);
  for (const [outcome, message] of [
    [ofMissing, `${missing}: no such image file`],
    [ofCorrupt, `${corrupt}: cannot decode image: Input file contains unsupported image format`],
  ] as const) {
    assert.equal(outcome.code, 2, outcome.stderr);
    assert.equal(
      outcome.stderr.split('\n').find((line) => line.startsWith('error:')),
      `error: ${message}`,
    );
    assert.doesNotMatch(outcome.stderr, / {4}at /, 'no stack trace');
    assert.equal(outcome.stdout, '');
  }
  assert.equal(ofUntrained.code, 1, ofUntrained.stderr);
  assert.match(
    ofUntrained.stderr,
    new RegExp(
      `^error: no trained infodisent head of configuration '${configuration.name}' in file://${untrained}: ` +
        `run \`infodisent run ${sweepFile}\` first`,
      'm',
    ),
  );
  assert.doesNotMatch(ofUntrained.stderr, / {4}at /, 'no stack trace');
});

test('explain names a damaged trained head or feature manifest and says how to recompute it', {
  timeout: 120_000,
}, async () => {
  const [file] = await explainedTestImages();
  const damagedCopy = async (name: string, key: string, keep: number) => {
    const store = path.join(home, name);
    await cp(path.join(home, 'store'), store, { recursive: true });
    await truncate(path.join(store, key), keep);
    return store;
  };
  const headFile = `${trained.heads.infodisent.key}/head.bin`;
  const manifestFile = `${trained.train.key}/manifest.json`;
  const [ofHead, ofManifest] = await Promise.all([
    cli([file!], await damagedCopy('cut-head', headFile, 100)),
    cli([file!], await damagedCopy('cut-manifest', manifestFile, 30)),
  ]);
  for (const [outcome, store, key, problem] of [
    [ofHead, 'cut-head', headFile, 'damaged tensor file'],
    [ofManifest, 'cut-manifest', manifestFile, 'not valid JSON'],
  ] as const) {
    assert.equal(outcome.code, 2, outcome.stderr);
    const line = outcome.stderr.split('\n').find((text) => text.startsWith('error:')) ?? '';
    assert.ok(line.startsWith(`error: file://${path.join(home, store)}/${key}: ${problem}`), line);
    assert.ok(line.endsWith('delete it and run again to compute it anew'), line);
    assert.doesNotMatch(outcome.stderr, / {4}at /, 'no stack trace');
  }
});

test('the explain stage measured stability on the configured number of noised test images', () => {
  for (const kind of ['infodisent', 'baseline'] as const) {
    const { stability, consistency } = summary.heads[kind]!.explanations!.faithfulness;
    assert.ok(stability && consistency, `${kind} has consistency and stability`);
    assert.equal(stability.images, configuration.explain.stabilityImages);
    assert.ok(stability.stability >= 0 && stability.stability <= 1);
    const figures = trained.explained.faithfulness[kind]!;
    assert.equal(figures.stability, stability.stability);
    assert.equal(figures.stabilityImages, 3);
  }
});

test('plan: nothing left to compute in the trained store, everything in an empty one; a missing dataset is named', {
  timeout: 300_000,
}, async () => {
  // The micro sweep, and a configuration of it pointed at a CUB folder that is not there.
  const document = JSON.parse(await readFile(sweepFile, 'utf8'));
  const missing = path.join(home, 'no-cub');
  document.configurations.push({
    ...document.configurations[0],
    name: 'cub-missing',
    dataset: { kind: 'cub', name: 'cub', root: missing },
  });
  const withCub = path.join(home, 'with-cub.json');
  await writeFile(withCub, JSON.stringify(document));
  interface PlanJson {
    planned: ConfigurationPlan[];
    failed: { configuration: string; error: string }[];
    totals: {
      featureSets: number;
      cachedBytes: number;
      toWriteBytes: number;
      imagesToExtract: number;
      headsToTrain: number;
      estimatedSeconds: { extraction: number; training: number };
    };
    unmeasured: string[];
  }
  const plan = (file: string, store: string) =>
    runCli(['plan', file, '--store', store, '--data-dir', path.join(home, 'datasets'), '--json']);

  const trainedOutcome = await plan(withCub, path.join(home, 'store'));
  assert.equal(trainedOutcome.code, 1, 'a configuration cannot run');
  const ofTrained = JSON.parse(trainedOutcome.stdout) as PlanJson;
  assert.deepEqual(ofTrained.failed, [
    {
      configuration: 'cub-missing',
      error: `${missing}: missing dataset root folder`,
    },
  ]);
  const [micro] = ofTrained.planned;
  const bytes = (images: number) => images * 7 * 7 * 1280 * 4;
  assert.deepEqual(micro, {
    configuration: configuration.name,
    dataset: { name: trained.dataset.name, classes: 3, train: 18, test: 6, skipped: 0 },
    backbone: { name: 'nsfwjs-mobilenet-v2', map: { height: 7, width: 7, channels: 1280 } },
    features: {
      train: { key: trained.train.key, images: 18, bytes: bytes(18), state: 'cached' },
      test: { key: trained.test.key, images: 6, bytes: bytes(6), state: 'cached' },
    },
    heads: (['baseline', 'infodisent'] as const).map((kind) => ({
      kind,
      state: 'trained',
      backend: trained.heads[kind].backend,
    })),
  });
  assert.deepEqual(ofTrained.totals, {
    featureSets: 2,
    cachedBytes: bytes(24),
    toWriteBytes: 0,
    imagesToExtract: 0,
    headsToTrain: 0,
    estimatedSeconds: { extraction: 0, training: 0 },
  });

  const empty = JSON.parse((await plan(sweepFile, path.join(home, 'empty-store'))).stdout) as PlanJson;
  assert.deepEqual(
    empty.planned.map((p) => [p.features.train.state, p.features.test.state, ...p.heads.map((h) => h.state)]),
    [['extract', 'extract', 'train', 'train']],
  );
  assert.equal(
    empty.planned[0]!.features.train.key,
    trained.train.key,
    'the same features, wherever they are',
  );
  assert.deepEqual(empty.totals, {
    featureSets: 2,
    cachedBytes: 0,
    toWriteBytes: bytes(24),
    imagesToExtract: 24,
    headsToTrain: 2,
    estimatedSeconds: { extraction: 0, training: 0 },
  });
  assert.deepEqual(empty.unmeasured, [
    'extract nsfwjs-mobilenet-v2',
    'train baseline on nsfwjs-mobilenet-v2',
    'train infodisent on nsfwjs-mobilenet-v2',
  ]);

  // A store whose earlier results measured the backbone's extraction (50 images/s) and the baseline's
  // training (5 steps/s): the work left is timed at those rates, the InfoDisent head has none.
  const measured = path.join(home, 'measured-store');
  const cpu = { name: 'onnxruntime cpu', hardware: 'a CPU' };
  await writeSweepResults(new LocalArtifactStore(measured), {
    sweep: 'earlier',
    finishedAt: '2026-11-27T12:00:00.000Z',
    completed: [
      outcomeWithCompute('earlier-parts', {
        backbone: 'nsfwjs-mobilenet-v2',
        features: { key: 'earlier', train: computeRecordOf(cpu, 2, 100) },
        heads: [
          { kind: 'baseline', key: 'heads/earlier', steps: 10, compute: computeRecordOf(cpu, 2, 10) },
          { kind: 'infodisent', key: 'heads/earlier-infodisent', steps: 10 },
        ],
      }),
    ],
    failed: [],
  });
  const timed = JSON.parse((await plan(sweepFile, measured)).stdout) as PlanJson;
  const [timedMicro] = timed.planned;
  assert.deepEqual(
    [timedMicro!.features.train.estimate?.seconds, timedMicro!.features.test.estimate?.seconds],
    [18 / 50, 6 / 50],
  );
  assert.deepEqual(
    timedMicro!.heads.map((head) => [head.kind, head.steps, head.estimate?.seconds]),
    [
      ['baseline', 10, 2],
      ['infodisent', 1, undefined],
    ],
  );
  assert.deepEqual(timed.totals.estimatedSeconds, { extraction: 24 / 50, training: 2 });
  assert.deepEqual(timed.unmeasured, ['train infodisent on nsfwjs-mobilenet-v2']);
  const timedText = await runCli([
    'plan',
    sweepFile,
    '--store',
    measured,
    '--data-dir',
    path.join(home, 'datasets'),
  ]);
  assert.match(
    timedText.stdout,
    /^at the rates earlier runs in this store measured: extracting 0s, training at most 2s\n {2}extract nsfwjs-mobilenet-v2: 50 images\/s, onnxruntime cpu on a CPU \(earlier\/earlier-parts\)\n {2}train baseline on nsfwjs-mobilenet-v2: 5\.00 steps\/s, onnxruntime cpu on a CPU \(earlier\/earlier-parts\)\nno rate measured yet for: train infodisent on nsfwjs-mobilenet-v2$/m,
  );

  // For people: one row a configuration, the totals, and what cannot run.
  const text = await runCli([
    'plan',
    withCub,
    '--store',
    path.join(home, 'store'),
    '--data-dir',
    path.join(home, 'datasets'),
  ]);
  assert.match(
    text.stdout,
    /^parts-micro +parts\S*: 3 classes, 18\/6 images +7x7x1280 +cached, 4\.3 MiB +cached, 1\.4 MiB +baseline: trained \(wasm\); infodisent: trained \(wasm\)$/m,
  );
  assert.match(
    text.stdout,
    /^2 feature sets: 5\.7 MiB cached, 0 B to write \(0 images to extract\); 0 heads to train$/m,
  );
  assert.match(text.stdout, /^CANNOT RUN cub-missing: .*no-cub: missing dataset root folder$/m);
});

test('an explain stage cut off after one head resumes from it, and its parts go once the summary is written', {
  timeout: 300_000,
}, async () => {
  const { dataset, train, test: testSet, heads, explained } = trained;
  const { summaryKey } = explained;
  const parts = async (store: LocalArtifactStore) =>
    (await store.list('summaries/')).filter((key) => key.endsWith('.part.json'));
  assert.deepEqual(
    await parts(trained.context.store as LocalArtifactStore),
    [],
    'a finished stage leaves none',
  );

  // A copy of the store as a run cut off after the baseline leaves it: that head's part, no summary.
  const root = path.join(home, 'cut-off-store');
  await cp(path.join(home, 'store'), root, { recursive: true });
  const store = new LocalArtifactStore(root);
  await store.delete(summaryKey);
  const earlier = { summary: summary.heads.baseline!, seconds: 1000 };
  await putJson(store, explainedHeadKey(summaryKey, 'baseline'), earlier);

  const stages = new Set<string>();
  const context = {
    store,
    dataDir: path.join(home, 'datasets'),
    progress: (stage: string) => void stages.add(stage.split(':')[0]!),
  };
  const resumed = await explainStage(context, configuration, dataset, train, testSet, [
    heads.baseline,
    heads.infodisent,
  ]);
  assert.equal(resumed.summaryKey, summaryKey);
  assert.ok(!stages.has('explain baseline') && !stages.has('analyse baseline'), [...stages].join(', '));
  assert.ok(stages.has('explain infodisent') && stages.has('analyse infodisent'), [...stages].join(', '));
  const written = (await getJson<ConfigurationSummary>(store, summaryKey))!;
  assert.deepEqual(written.heads.baseline, earlier.summary);
  assert.deepEqual(written.heads.infodisent, summary.heads.infodisent);
  assert.ok(written.compute!.seconds > 1000, "the earlier run's seconds count");
  assert.deepEqual(await parts(store), []);
});
