import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type Command, Option } from 'commander';
import { type Configuration, loadSweepFile } from '../../core/config/experiment';
import type { HeadKind } from '../../core/method/head';
import {
  type ExplainedFile,
  explainImageFiles,
  type FileExplanations,
  NotTrainedError,
} from '../../core/pipeline/explain-images';
import {
  evidenceShare,
  explanationFigurePng,
  explanationHeatmap,
  heatmapTitle,
  logitBreakdown,
} from '../../core/report';
import { InputError } from '../../core/util/errors';
import { addDataDirOption, addStoreOptions, openCheckedStore, type StoreFlags } from '../connection';
import { CliError, type JsonFlag, positiveInt, printJson, printLine } from '../output';

interface ExplainFlags extends StoreFlags, JsonFlag {
  config: string;
  configuration?: string;
  head: HeadKind;
  top: number;
  out?: string;
  dataDir: string;
}

/** The configuration to explain with: the named one, or the sweep's only one. */
function chooseConfiguration(configurations: Configuration[], file: string, name?: string): Configuration {
  const names = configurations.map((c) => `'${c.name}'`).join(', ');
  if (name === undefined) {
    if (configurations.length === 1) return configurations[0]!;
    throw new CliError(
      `${file} holds ${configurations.length} configurations (${names}): name one with --configuration`,
      2,
    );
  }
  const found = configurations.find((c) => c.name === name);
  if (!found) throw new CliError(`${file} has no configuration '${name}' (it has ${names})`, 2);
  return found;
}

const classNameOf = (result: FileExplanations, image: ExplainedFile) =>
  result.classes[image.predicted] ?? `class ${image.predicted}`;

/** One panel file per image in `out`, named after the image (made unique when two share a name). */
function panelFiles(images: readonly ExplainedFile[], out: string): string[] {
  const used = new Set<string>();
  return images.map(({ file }) => {
    const base = path.parse(file).name;
    let name = `${base}.explanation.png`;
    for (let i = 2; used.has(name); i++) name = `${base}-${i}.explanation.png`;
    used.add(name);
    return path.join(out, name);
  });
}

async function writePanels(result: FileExplanations, out: string): Promise<string[]> {
  await mkdir(out, { recursive: true });
  const files = panelFiles(result.images, out);
  for (const [i, image] of result.images.entries()) {
    const className = classNameOf(result, image);
    const png = await explanationFigurePng(image, {
      file: image.file,
      title: `${path.basename(image.file)}: predicted ${className} (${result.head} head)`,
      heatmap: explanationHeatmap(image, heatmapTitle(result.head, className), result.grid, result.preset),
      datasetRoot: result.datasetRoot,
    });
    await writeFile(files[i]!, png);
  }
  return files;
}

/** The explanation for scripts: every number SPEC section 1 defines, prototype files made absolute. */
export function explanationJson(result: FileExplanations, panels: string[] | undefined) {
  return {
    ...result,
    images: result.images.map((image, i) => ({
      ...image,
      predictedClass: classNameOf(result, image),
      channels: image.channels.map((channel) => ({
        ...channel,
        share: evidenceShare(image, channel.contribution),
        prototypes: channel.prototypes.map((p) => ({ ...p, file: path.join(result.datasetRoot, p.path) })),
      })),
      ...(panels ? { panel: panels[i] } : {}),
    })),
  };
}

export type ExplanationJson = ReturnType<typeof explanationJson>;

function printText(result: FileExplanations, panels: string[] | undefined): void {
  for (const [i, image] of result.images.entries()) {
    const className = classNameOf(result, image);
    printLine(
      `${image.file}: predicted '${className}' (class ${image.predicted} of ${result.classes.length}) ` +
        `by the ${result.head} head of '${result.configuration}'`,
    );
    printLine(`  ${logitBreakdown(image)}`);
    if (image.channels.length === 0) printLine('  no channel contributes positively');
    for (const channel of image.channels) {
      const share = 100 * evidenceShare(image, channel.contribution);
      printLine(
        `  channel ${channel.channel}: a = ${channel.contribution.toFixed(3)} ` +
          `(${share.toFixed(1)}% of the positive evidence; w = ${channel.weight.toPrecision(3)}, p = ${channel.pooled.toPrecision(3)})`,
      );
      for (const p of channel.prototypes) {
        const { x0, y0, x1, y1 } = p.box;
        printLine(
          `    prototype ${path.join(result.datasetRoot, p.path)}  p = ${p.value.toPrecision(3)}  ` +
            `box ${Math.round(x0)},${Math.round(y0)}-${Math.round(x1)},${Math.round(y1)}`,
        );
      }
    }
    if (panels) printLine(`  panel: ${panels[i]}`);
    if (i < result.images.length - 1) printLine('');
  }
}

async function explainCommand(images: string[], flags: ExplainFlags): Promise<void> {
  const sweep = await loadSweepFile(flags.config);
  const configuration = chooseConfiguration(sweep.configurations, flags.config, flags.configuration);
  const { store } = await openCheckedStore(flags);
  let result: FileExplanations;
  try {
    result = await explainImageFiles(
      { store, dataDir: path.resolve(flags.dataDir) },
      configuration,
      images.map((file) => path.resolve(file)),
      { head: flags.head, top: flags.top },
    );
  } catch (error) {
    if (error instanceof InputError) throw new CliError(error.message, 2, { cause: error });
    if (error instanceof NotTrainedError)
      throw new CliError(
        `${error.message}: run \`infodisent run ${flags.config}\` first (or point --store and --data-dir at the store that run wrote)`,
        1,
        { cause: error },
      );
    throw error;
  }
  const panels = flags.out ? await writePanels(result, path.resolve(flags.out)) : undefined;
  if (flags.json) printJson(explanationJson(result, panels));
  else printText(result, panels);
}

export function registerExplainCommand(program: Command): void {
  const command = program
    .command('explain')
    .description(
      "explain a trained head's prediction for image files: the predicted class, the top channels with their " +
        'contributions and prototype images, and (with --out) a panel with the class heatmap',
    )
    .argument('<images...>', 'image files (any format sharp decodes: PNG, JPEG, WebP, ...)')
    .requiredOption('--config <file>', 'the sweep configuration (JSON) the head was trained with')
    .option('--configuration <name>', 'the configuration within the sweep (needed when it holds several)')
    .addOption(
      new Option('--head <kind>', 'the head whose prediction is explained')
        .choices(['infodisent', 'baseline'])
        .default('infodisent'),
    )
    .option('--top <n>', 'channels shown per prediction', positiveInt, 5)
    .option('--out <dir>', 'write one explanation panel (PNG) per image into this folder')
    .option('--json', 'print the explanations as JSON for scripts')
    .addHelpText(
      'after',
      '\nThe head, its features and the prototypes the explain stage found are looked up in the store by content,\n' +
        'as the pipeline keyed them, so run the sweep first. For example:\n' +
        '  infodisent run experiments/smoke.json\n' +
        '  infodisent explain photo.jpg --config experiments/smoke.json --out panels/',
    );
  addStoreOptions(command);
  addDataDirOption(command).action(explainCommand);
}
