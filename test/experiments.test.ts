import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import Ajv2020 from 'ajv/dist/2020';
import {
  ConfigError,
  type Configuration,
  loadSweepFile,
  parseSweep,
  selectConfigurations,
  sweepJsonSchema,
} from '../core/config/experiment';
import { repoRoot } from '../infra/paths';
import { runCli } from './support/cli';
import { minimalSweepDocument } from './support/sweep-documents';

const experiments = path.join(repoRoot(), 'experiments');

test('every sweep in experiments/ validates', async () => {
  const files = readdirSync(experiments).filter((f) => f.endsWith('.json'));
  assert.ok(files.length >= 4);
  for (const file of files) await loadSweepFile(path.join(experiments, file));
});

test('the JSON Schema editors read is the one the CLI prints, and accepts and refuses what the CLI does', async () => {
  // Compared as JSON: the formatter lays the committed file out its own way.
  const committed = JSON.parse(readFileSync(path.join(experiments, 'schema', 'sweep.schema.json'), 'utf8'));
  assert.deepEqual(
    committed,
    sweepJsonSchema(),
    'regenerate it: npx infodisent config schema > experiments/schema/sweep.schema.json',
  );
  assert.deepEqual(JSON.parse((await runCli(['config', 'schema'])).stdout), committed);
  const validate = new Ajv2020({ strict: false, allErrors: true }).compile(committed);
  for (const file of readdirSync(experiments).filter((f) => f.endsWith('.json'))) {
    const document = JSON.parse(readFileSync(path.join(experiments, file), 'utf8')) as Record<
      string,
      unknown
    >;
    assert.equal(document['$schema'], './schema/sweep.schema.json', `${file} names the schema`);
    assert.ok(validate(document), `${file}: ${JSON.stringify(validate.errors)}`);
    assert.ok(!('$schema' in parseSweep(document)), 'the pipeline never sees $schema');
  }
  const base = minimalSweepDocument();
  assert.ok(validate(base), JSON.stringify(validate.errors));
  const variants: [string, (c: Record<string, unknown>) => void][] = [
    ['an unknown field', (c) => Object.assign(c, { epochs: 3 })],
    ['a name with capitals', (c) => Object.assign(c, { name: 'Cub' })],
    [
      'a head without epochs',
      (c) => delete (c['heads'] as { baseline: Record<string, unknown> }).baseline['epochs'],
    ],
    ['an unknown dataset kind', (c) => Object.assign(c, { dataset: { kind: 'coco', root: '/data' } })],
    [
      'a negative learning rate',
      (c) =>
        Object.assign(c, {
          heads: {
            ...(c['heads'] as object),
            baseline: { epochs: 1, weight: { learningRate: -1 }, bias: { learningRate: 0.1 } },
          },
        }),
    ],
    ['an unknown backend', (c) => Object.assign(c, { backend: 'cuda' })],
  ];
  for (const [what, mutate] of variants) {
    const copy = structuredClone(base);
    mutate(copy.configurations[0] as unknown as Record<string, unknown>);
    assert.equal(validate(copy), false, `the JSON Schema refuses ${what}`);
    assert.throws(() => parseSweep(copy), ConfigError, `the CLI refuses ${what}`);
  }
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
    [
      (c) => (c['backbone'] = { name: 'nsfwjs-mobilenet-v2', output: 'x' }),
      /configurations\[0\]\.backbone\.output: 'output' names a value of an ONNX backbone's 'file'/,
    ],
    [(c) => (c['epochs'] = 3), /configurations\[0\]: .*'epochs'/],
    [(c) => (c['dataset'] = { kind: 'cub' }), /configurations\[0\]\.dataset\.root/],
    [(c) => (c['dataset'] = { kind: 'coco', root: '/x' }), /configurations\[0\]\.dataset\.kind/],
    [
      (c) => (c['dataset'] = { kind: 'class-folders', root: '/x', testFraction: 1 }),
      /configurations\[0\]\.dataset\.testFraction: .*< ?1/,
    ],
    [(c) => (c['dataset'] = { kind: 'cub', root: '/x', testFraction: 0.2 }), /dataset: .*'testFraction'/],
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
