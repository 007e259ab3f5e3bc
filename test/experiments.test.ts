import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import {
  ConfigError,
  type Configuration,
  loadSweepFile,
  parseSweep,
  selectConfigurations,
} from '../core/config/experiment';
import { repoRoot } from '../infra/paths';
import { minimalSweepDocument } from './support/sweep-documents';

const experiments = path.join(repoRoot(), 'experiments');

test('every sweep in experiments/ validates', async () => {
  const files = readdirSync(experiments).filter((f) => f.endsWith('.json'));
  assert.ok(files.length >= 4);
  for (const file of files) await loadSweepFile(path.join(experiments, file));
});

test("the paper sweep holds SPEC section 3's 14 configurations", async () => {
  const sweep = await loadSweepFile(path.join(experiments, 'paper.json'));
  const pairs = sweep.configurations.map((c) => `${c.dataset.kind} x ${c.backbone.name}`).sort();
  assert.deepEqual(pairs, [
    'cub x convnext-tiny',
    'cub x densenet121',
    'cub x resnet34',
    'cub x resnet50',
    'imagenet x convnext-large',
    'imagenet x densenet121',
    'imagenet x resnet34',
    'imagenet x resnet50',
    'imagenet x swinv2-s',
    'imagenet x vit-b16',
    'stanford-cars x convnext-tiny',
    'stanford-cars x densenet121',
    'stanford-cars x resnet34',
    'stanford-cars x resnet50',
  ]);
  for (const configuration of sweep.configurations) assert.ok(configuration.backbone.file?.endsWith('.onnx'));
  // SPEC section 3's published top-1 figures (CUB and Cars) and Table 8's two RV examples travel with it.
  const reported = Object.fromEntries(sweep.configurations.map((c) => [c.name, c.reported]));
  assert.deepEqual(reported['cub-resnet50']?.baseline, { top1: 83.2, rv: 7.8 });
  assert.deepEqual(reported['cub-resnet50']?.infodisent, { top1: 83.0, rv: 4.9 });
  assert.deepEqual(reported['cars-convnext-tiny']?.infodisent, { top1: 90.2 });
  assert.deepEqual(reported['imagenet-convnext-large']?.baseline, { rv: 3.0 });
  const withTop1 = sweep.configurations.filter((c) => c.reported?.infodisent?.top1 !== undefined);
  assert.equal(withTop1.length, 8);
});

test('invalid sweeps name the failing field', () => {
  const base = minimalSweepDocument();
  assert.equal(parseSweep(base).configurations[0]!.heads.infodisent.foldEvery, 1);
  const broken = (mutate: (c: Record<string, unknown>) => void) => {
    const copy = structuredClone(base);
    mutate(copy.configurations[0] as unknown as Record<string, unknown>);
    return () => parseSweep(copy, 'broken.json');
  };
  const cases: [(c: Record<string, unknown>) => void, RegExp][] = [
    [
      (c) => (c['backbone'] = { name: 'resnet-9000' }),
      /configurations\[0\]\.backbone\.name: unknown backbone 'resnet-9000'/,
    ],
    [(c) => (c['backbone'] = { name: 'r50', file: '/m/r50.onnx' }), /configurations\[0\]\.backbone\.preset/],
    [(c) => (c['epochs'] = 3), /configurations\[0\]: .*'epochs'/],
    [(c) => (c['dataset'] = { kind: 'cub' }), /configurations\[0\]\.dataset\.root/],
    [(c) => (c['dataset'] = { kind: 'coco', root: '/x' }), /configurations\[0\]\.dataset\.kind/],
    [(c) => (c['reported'] = { baseline: { top1: 80 } }), /configurations\[0\]\.reported\.source/],
    [
      (c) => (c['reported'] = { source: 'x', infodisent: { top1: 83.5e2 } }),
      /configurations\[0\]\.reported\.infodisent\.top1/,
    ],
    [(c) => (c['reported'] = { source: 'x', baseline: { acc: 80 } }), /reported\.baseline: .*'acc'/],
  ];
  for (const [mutate, pattern] of cases)
    assert.throws(
      broken(mutate),
      (error: unknown) => error instanceof ConfigError && pattern.test(error.message),
    );
});

test('seeds run a configuration once per seed, as configurations the tables merge', () => {
  const document = minimalSweepDocument({ seeds: [7, 1, 2] });
  const sweep = parseSweep(document);
  assert.deepEqual(
    sweep.configurations.map((c) => [c.name, c.seed, c.repeatOf]),
    [
      ['c-seed7', 7, 'c'],
      ['c-seed1', 1, 'c'],
      ['c-seed2', 2, 'c'],
    ],
  );
  // Everything else is the configuration's own.
  const rest = ({ name: _n, seed: _s, repeatOf: _r, ...others }: Configuration) => others;
  assert.deepEqual(rest(sweep.configurations[0]!), rest(sweep.configurations[2]!));
  assert.ok(!('seeds' in sweep.configurations[0]!));
  // A workflow's stored input parses to itself (sweep status and resume read it back).
  assert.deepEqual(parseSweep(JSON.parse(JSON.stringify(sweep))), sweep);
  assert.equal(parseSweep(minimalSweepDocument()).configurations[0]!.seed, 0);

  const broken = (document: unknown, pattern: RegExp) =>
    assert.throws(
      () => parseSweep(document, 'seeds.json'),
      (error: unknown) => error instanceof ConfigError && pattern.test(error.message),
    );
  broken(
    minimalSweepDocument({ seed: 1, seeds: [1, 2] }),
    /configurations\[0\]\.seeds: give either seed or seeds/,
  );
  broken(minimalSweepDocument({ seeds: [1, 1] }), /configurations\[0\]\.seeds: seeds repeat/);
  broken(minimalSweepDocument({ seeds: [1] }), /configurations\[0\]\.seeds: /);
  broken(minimalSweepDocument({ seeds: [1.5, 2] }), /configurations\[0\]\.seeds\[0\]/);
  const clash = minimalSweepDocument({ seeds: [1, 2] });
  clash.configurations.push({ ...clash.configurations[0]!, name: 'c-seed2', seeds: undefined } as never);
  broken(clash, /configurations\[1\]\.name: duplicate configuration name 'c-seed2'/);
});

test('a subset of the configurations by name or glob; a seeds configuration by its own name', () => {
  const document = minimalSweepDocument({ seeds: [1, 2] });
  const other = { ...document.configurations[0]!, name: 'other', seeds: undefined };
  const sweep = parseSweep({ ...document, configurations: [...document.configurations, other] });
  const names = (patterns: string[]) => {
    const { sweep: selected, unmatched } = selectConfigurations(sweep, patterns);
    return { names: selected.configurations.map((c) => c.name), unmatched };
  };
  assert.deepEqual(names(['c']), { names: ['c-seed1', 'c-seed2'], unmatched: [] });
  assert.deepEqual(names(['c-seed2']), { names: ['c-seed2'], unmatched: [] });
  assert.deepEqual(names(['o*', 'c-seed?']), { names: ['c-seed1', 'c-seed2', 'other'], unmatched: [] });
  assert.deepEqual(names(['other', 'x*', 'c-seed3']), { names: ['other'], unmatched: ['x*', 'c-seed3'] });
  // The sweep keeps its name and everything else.
  assert.equal(selectConfigurations(sweep, ['other']).sweep.name, sweep.name);
});
