import path from 'node:path';
import type { Command } from 'commander';
import { compareRuns } from '../../core/pipeline/compare';
import { comparisonTable } from '../../core/report/comparison';
import { type TableFormat, writeTable } from '../../core/report/table-formats';
import { addStoreOptions, openCheckedStore, type StoreFlags } from '../connection';
import { type JsonFlag, printJson, printLine, printTable, tableFormatOption } from '../output';
import { findStoredRun } from '../stored-sweeps';

interface CompareFlags extends StoreFlags, JsonFlag {
  out?: string;
  format: TableFormat[];
}

async function compareCommand(first: string, second: string, flags: CompareFlags): Promise<void> {
  const { store } = await openCheckedStore(flags);
  const comparison = await compareRuns(
    store,
    await findStoredRun(store, first),
    await findStoredRun(store, second),
  );
  const comparisonRows = comparisonTable(comparison);
  const files = flags.out ? await writeTable(path.resolve(flags.out), comparisonRows, flags.format) : [];
  if (flags.json) {
    printJson({ location: store.location, ...comparison, ...(flags.out ? { files } : {}) });
    return;
  }
  const run = ({ sweep, finishedAt }: { sweep: string; finishedAt: string }) =>
    `'${sweep}' (finished ${finishedAt})`;
  printLine(`first: ${run(comparison.first)}\nsecond: ${run(comparison.second)}\n`);
  printTable(comparisonRows);
  const unpaired = comparison.heads.filter((head) => head.unpaired);
  for (const head of unpaired) printLine(`no p for ${head.configuration} ${head.head}: ${head.unpaired}`);
  for (const [which, names] of [
    ['first', comparison.onlyInFirst],
    ['second', comparison.onlyInSecond],
  ] as const)
    if (names.length > 0) printLine(`only in the ${which}: ${names.join(', ')}`);
  if (files.length > 0) printLine(`wrote ${files.join(', ')}`);
}

export function registerCompareCommand(program: Command): void {
  addStoreOptions(
    program
      .command('compare')
      .description(
        "compare two finished runs head by head (two sweeps, or two runs of one): each head's top-1 in both, and " +
          "the change image by image with McNemar's exact test",
      )
      .argument(
        '<first>',
        'a sweep (its latest run), SWEEP@N (its N-th stored run) or SWEEP@TIME (a finishing time prefix)',
      )
      .argument('<second>', 'the run to compare with the first, written the same way')
      .option('--out <dir>', 'also write the table into this folder as comparison.md, .csv, .tex and .json')
      .addOption(tableFormatOption())
      .option('--json', 'print the comparison as JSON'),
  ).action(compareCommand);
}
