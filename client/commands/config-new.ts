import { existsSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { parseSweep, readSweepDocument } from '../../core/config/experiment';
import { backboneDocument, newSweepDocument, slug } from '../../core/config/new-sweep';
import { detectDatasetLayout } from '../../core/data/loaders/detect';
import { PRESETS, type PresetName } from '../../core/data/preprocess';
import { InputError } from '../../core/util/errors';
import { repoRoot } from '../../infra/paths';
import { CliError } from '../output';

interface ConfigNewOptions {
  dataset: string[];
  backbone: string[];
  name?: string;
  testFraction: number;
  preset?: PresetName;
  heads: string;
  out?: string;
  force?: boolean;
}

const PAPER_SWEEP = path.join(repoRoot(), 'experiments', 'paper.json');

function fraction(value: string): number {
  const n = Number(value);
  if (!(n > 0 && n < 1)) throw new InvalidArgumentError('expected a number between 0 and 1.');
  return n;
}

/** The head settings of the sweep file's first configuration, as the file gives them (once it validates). */
async function templateHeads(file: string): Promise<Record<string, unknown>> {
  const document = await readSweepDocument(file);
  parseSweep(document, file);
  return (document as { configurations: { heads: Record<string, unknown> }[] }).configurations[0]!.heads;
}

/** Writes a sweep file for datasets and backbones at hand: each folder's layout found, each model's preset read. */
async function configNewCommand(options: ConfigNewOptions): Promise<void> {
  const { out } = options;
  if (out && existsSync(out) && !options.force)
    throw new CliError(`${out} exists: give --force to replace it`, 2);
  const name = options.name ?? ((out && slug(path.basename(out, path.extname(out)))) || 'sweep');
  let document: Record<string, unknown>;
  try {
    const datasets = await Promise.all(
      options.dataset.map(async (root) => ({ root, layout: await detectDatasetLayout(root) })),
    );
    const backbones = await Promise.all(options.backbone.map((b) => backboneDocument(b, options.preset)));
    const template = await templateHeads(options.heads);
    const schema = path.join(repoRoot(), 'experiments', 'schema', 'sweep.schema.json');
    document = newSweepDocument({
      name,
      datasets,
      backbones,
      heads: template,
      testFraction: options.testFraction,
      // Relative to where the file goes, as the sweeps in experiments/ name theirs.
      schema: path.relative(out ? path.dirname(path.resolve(out)) : process.cwd(), schema),
    });
    for (const { root, layout } of datasets)
      process.stderr.write(
        `${path.resolve(root)}: ${layout.kind}${layout.unsplit ? ` (class folders with no split: ${options.testFraction} of each class held out for test)` : ''}\n`,
      );
  } catch (error) {
    if (error instanceof InputError) throw new CliError(error.message, 2, { cause: error });
    throw error;
  }
  // Whatever was found, the file is one the CLI takes.
  const sweep = parseSweep(document, out ?? '<stdout>');
  const text = `${JSON.stringify(document, null, 2)}\n`;
  if (!out) {
    process.stdout.write(text);
    return;
  }
  await writeFile(`${out}.tmp`, text);
  await rename(`${out}.tmp`, out);
  process.stderr.write(
    `wrote ${out}: ${sweep.configurations.length} configuration${sweep.configurations.length === 1 ? '' : 's'}; ` +
      `next, \`infodisent plan ${out}\` reads each dataset and backbone and says what a run would do\n`,
  );
}

export function registerConfigNewCommand(config: Command): void {
  config
    .command('new')
    .description(
      'write a sweep file for your datasets and backbones: each dataset folder read in the layout found there ' +
        '(CUB, Stanford Cars or Dogs, ImageNet, class folders with or without a split), each ONNX backbone with ' +
        'the preprocessing its export recorded, the heads trained as in experiments/paper.json',
    )
    .requiredOption('--dataset <dirs...>', 'dataset folders, in their official layouts or as class folders')
    .option(
      '--backbone <models...>',
      'ONNX exports (infra/export_backbones.py writes each with a .json that names its preset) or bundled backbones',
      ['nsfwjs-mobilenet-v2'],
    )
    .option('--name <name>', "the sweep's name (default: the --out file's name, else 'sweep')")
    .option(
      '--test-fraction <share>',
      'share of each class held out for test in class folders with no train/test split',
      fraction,
      0.2,
    )
    .addOption(
      new Option(
        '--preset <name>',
        'preprocessing of ONNX backbones with no export .json beside them',
      ).choices(Object.keys(PRESETS)),
    )
    .option('--heads <file>', "a sweep file whose first configuration's head settings to take", PAPER_SWEEP)
    .option('--out <file>', 'write the sweep here (default: print it)')
    .option('--force', 'replace the --out file if it exists')
    .action(configNewCommand);
}
