import path from 'node:path';
import type { Command } from 'commander';
import { type ExportedFiles, exportSweep } from '../../core/pipeline/export';
import type { TableFormat } from '../../core/report/table-formats';
import { InputError } from '../../core/util/errors';
import { plural } from '../../core/util/plural';
import { addStoreOptions, openCheckedStore, type StoreFlags } from '../connection';
import { CliError, type JsonFlag, printJson, printLine, shortTime, tableFormatOption } from '../output';
import { findStoredSweep } from '../stored-sweeps';

interface ExportFlags extends StoreFlags, JsonFlag {
  out: string;
  sweep?: string;
  format: TableFormat[];
  figures?: boolean;
  html?: boolean;
}

const FOLDERS: (keyof ExportedFiles)[] = ['tables', 'figures', 'html'];

async function exportCommand(flags: ExportFlags): Promise<void> {
  const { store } = await openCheckedStore(flags);
  const results = await findStoredSweep(store, flags.sweep);
  const out = path.resolve(flags.out);
  let files: ExportedFiles;
  try {
    files = await exportSweep(store, results, out, {
      formats: flags.format,
      figures: Boolean(flags.figures),
      html: Boolean(flags.html),
    });
  } catch (error) {
    if (error instanceof InputError) throw new CliError(error.message, 1, { cause: error });
    throw error;
  }
  const exported = {
    sweep: results.sweep,
    finishedAt: results.finishedAt,
    store: store.location,
    out,
    configurations: results.completed.map((c) => c.configuration),
    failed: results.failed,
    files,
  };
  if (flags.json) {
    printJson(exported);
    return;
  }
  printLine(
    `exported ${flags.sweep ? 'sweep' : 'the latest sweep'} '${results.sweep}' (finished ` +
      `${shortTime(results.finishedAt)}, ${plural(results.completed.length, 'configuration')}) from ${store.location}:`,
  );
  for (const folder of FOLDERS.filter((f) => files[f].length > 0))
    printLine(`  ${path.join(out, folder)}  ${files[folder].length} files`);
  for (const failure of results.failed)
    printLine(`FAILED ${failure.configuration} (no rows in the tables): ${failure.error}`);
}

export function registerExportCommand(program: Command): void {
  const command = program
    .command('export')
    .description(
      "export a finished sweep from the store: the paper's tables (accuracy per dataset x backbone, RV, " +
        '95% ablation, faithfulness) as Markdown, CSV, LaTeX (booktabs) and JSON into <out>/tables, and ' +
        'optionally the report figures and the HTML report',
    )
    .requiredOption('--out <dir>', 'folder to write into (tables/, figures/, html/)')
    .option('--sweep <name>', 'sweep name, as in results/<name>/ of the store (default: the latest finished)')
    .addOption(tableFormatOption())
    .option(
      '--figures',
      "copy the report's figures (SVG charts, PNG prototypes and explanations) to figures/",
    )
    .option('--html', 'copy the whole HTML report folder to html/')
    .option('--json', 'print what was written as JSON');
  addStoreOptions(command).action((flags: ExportFlags) => exportCommand(flags));
}
