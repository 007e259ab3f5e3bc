import { existsSync } from 'node:fs';
import path from 'node:path';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { storeInventory } from '../../core/pipeline/inventory';
import {
  planPrune,
  type RunningWork,
  removeArtifacts,
  staleAbandonedWrites,
} from '../../core/pipeline/prune';
import { forgetSweep, sweepRuns } from '../../core/pipeline/results';
import { historyTable, resultsHistory } from '../../core/report/history';
import { plural } from '../../core/util/plural';
import { liveLocalTemporalAddress } from '../../infra/dev-server';
import { stateDir } from '../../infra/paths';
import {
  addConnectionOptions,
  addStoreOptions,
  type ConnectionFlags,
  openCheckedStore,
  type StoreFlags,
  withClient,
} from '../connection';
import {
  binarySize,
  CliError,
  type JsonFlag,
  positiveInt,
  printJson,
  printLine,
  printTable,
  shortTime,
  table,
} from '../output';
import { embeddedRunningWork, runningWork } from '../running-work';
import { findStoredSweep } from '../stored-sweeps';

const usedBy = (sweeps: readonly string[]) => (sweeps.length > 0 ? sweeps.join(', ') : '(no stored sweep)');

/** The bytes of artifacts or unfinished writes (an artifact without a known size counts none). */
const totalBytes = (items: readonly { bytes?: number }[]) =>
  items.reduce((sum, item) => sum + (item.bytes ?? 0), 0);

async function listCommand(flags: StoreFlags & JsonFlag): Promise<void> {
  const { store } = await openCheckedStore(flags);
  const inventory = await storeInventory(store);
  // Every unfinished write, however recent: one under way shows here too.
  const unfinished = await store.abandonedWrites(new Date());
  if (flags.json) {
    printJson({ ...inventory, unfinishedWrites: unfinished });
    return;
  }
  const complete = inventory.features.flatMap((f) => (f.complete ? [f.complete] : []));
  const incomplete = inventory.features.length - complete.length;
  const finished = inventory.heads.filter((h) => h.finished).length;
  printLine(`store ${inventory.location}`);
  printLine(`\nsweeps with results: ${inventory.sweeps.length}`);
  if (inventory.sweeps.length > 0) {
    printLine(
      table(
        ['sweep', 'finished', 'configurations', 'failed', 'runs'],
        inventory.sweeps.map((s) => [
          s.sweep,
          shortTime(s.finishedAt),
          String(s.completed),
          String(s.failed),
          String(s.runs),
        ]),
      ),
    );
  }
  printLine(
    `\nfeature sets: ${inventory.features.length}, ${binarySize(complete.reduce((sum, f) => sum + f.bytes, 0))}` +
      (incomplete > 0 ? ` (${incomplete} incomplete: an extraction running or cut off)` : ''),
  );
  if (inventory.features.length > 0) {
    printLine(
      table(
        ['key', 'dataset', 'split', 'images', 'map', 'size', 'used by'],
        inventory.features.map(({ key, complete: c, shards, usedBy: sweeps }) =>
          c
            ? [
                key,
                c.dataset,
                c.split,
                c.skipped > 0 ? `${c.images} (${c.skipped} unreadable left out)` : String(c.images),
                `${c.shape.height}x${c.shape.width}x${c.shape.channels} ${c.dtype}`,
                binarySize(c.bytes),
                usedBy(sweeps),
              ]
            : [key, '', '', '', `incomplete: ${shards} shards`, '', usedBy(sweeps)],
        ),
      ),
    );
  }
  printLine(
    `\nheads: ${inventory.heads.length} (${finished} trained, ${inventory.heads.length - finished} in training)`,
  );
  if (inventory.heads.length > 0) {
    printLine(
      table(
        ['key', 'kind', 'state', 'used by'],
        inventory.heads.map((h) => [h.key, h.kind, h.finished ? 'trained' : 'checkpoint', usedBy(h.usedBy)]),
      ),
    );
  }
  const summaries = inventory.summaries.filter((s) => !s.part);
  const unused = summaries.filter((s) => s.usedBy.length === 0).length;
  const parts = inventory.summaries.length - summaries.length;
  printLine(
    `\nexplanation summaries: ${summaries.length}` +
      (unused > 0 ? ` (${unused} used by no stored sweep: see store prune)` : '') +
      (parts > 0 ? `; ${plural(parts, 'head explanation')} from cut-off explain stages` : ''),
  );
  if (unfinished.length > 0)
    printLine(
      `\nunfinished writes: ${unfinished.length}, ${binarySize(totalBytes(unfinished))} ` +
        '(under way, or left by a stopped writer: store prune deletes those over an hour old)',
    );
}

interface PruneFlags extends StoreFlags, ConnectionFlags, JsonFlag {
  incomplete?: boolean;
  offline?: boolean;
  yes?: boolean;
}

/** Both answers merged: what any of them says runs is kept. */
function mergedWork(answers: Exclude<RunningWork, 'unchecked'>[]): Exclude<RunningWork, 'unchecked'> {
  return {
    workflows: [...new Set(answers.flatMap((answer) => answer.workflows))],
    keys: new Set(answers.flatMap((answer) => [...answer.keys])),
  };
}

/**
 * The running sweeps' artifacts, from Temporal, and which Temporal said so. With --address (or
 * TEMPORAL_ADDRESS) that Temporal is asked, and one that does not answer stops the prune. On the embedded
 * default (no address given, the home's own store) whatever answers at 127.0.0.1:7233 may be another home's
 * `infodisent run`: the home's own history is read too (from its live run's dev server, or from its database
 * on a dev server started for the purpose), and also whatever answers at the default address (workers a
 * user started against a dev server there); a sweep either of them runs is kept.
 */
async function checkRunningWork(
  flags: PruneFlags,
  command: Command,
): Promise<{ running: RunningWork; askedOf: string }> {
  if (flags.offline) return { running: 'unchecked', askedOf: 'not asked (--offline)' };
  const refused = (error: unknown) =>
    new CliError(
      `${(error as Error).message}\n` +
        'store prune keeps what running sweeps use and asks Temporal which those are; ' +
        'if no sweep runs against this store, pass --offline',
      1,
      { cause: error },
    );
  const embedded =
    command.getOptionValueSource('address') === 'default' &&
    command.getOptionValueSource('store') === 'default';
  if (!embedded) {
    try {
      return { running: await withClient(flags, runningWork), askedOf: `Temporal at ${flags.address}` };
    } catch (error) {
      throw refused(error);
    }
  }
  const home = stateDir();
  const answers: Exclude<RunningWork, 'unchecked'>[] = [];
  const askedOf: string[] = [];
  const runAddress = liveLocalTemporalAddress(home);
  if (runAddress) {
    // A live `infodisent run` serves this home's history: its database is not to be opened twice.
    try {
      answers.push(await withClient({ ...flags, address: runAddress }, runningWork));
      askedOf.push(`this home's Temporal at ${runAddress} (infodisent run)`);
    } catch (error) {
      throw refused(error);
    }
  } else if (existsSync(path.join(home, 'temporal.db'))) {
    answers.push(await embeddedRunningWork(home));
    askedOf.push(`the history in ${home}`);
  }
  if (runAddress !== flags.address) {
    try {
      answers.push(await withClient(flags, runningWork));
      askedOf.push(`Temporal at ${flags.address}`);
    } catch (error) {
      // Nothing answers at the default address: the home's own history (where there is one) is all there is.
      if (answers.length === 0) throw refused(error);
    }
  }
  return { running: mergedWork(answers), askedOf: askedOf.join(' and ') };
}

async function pruneCommand(flags: PruneFlags, command: Command): Promise<void> {
  const { store } = await openCheckedStore(flags);
  const { running, askedOf } = await checkRunningWork(flags, command);
  const plan = planPrune(await storeInventory(store), {
    running,
    incomplete: Boolean(flags.incomplete),
  });
  const abandoned = await staleAbandonedWrites(store);
  const progress =
    flags.yes && !flags.json && process.stderr.isTTY && plan.remove.length > 0
      ? new cliProgress.SingleBar({ format: 'deleting {bar} {value}/{total}', stream: process.stderr })
      : undefined;
  progress?.start(plan.remove.length, 0);
  const deletedFiles = flags.yes
    ? await removeArtifacts(store, plan.remove, (done) => progress?.update(done))
    : 0;
  progress?.stop();
  if (flags.yes) for (const write of abandoned) await store.discardAbandonedWrite(write);
  const bytes = totalBytes(plan.remove);
  if (flags.json) {
    printJson({
      location: store.location,
      deleted: Boolean(flags.yes),
      runningWorkflows: running === 'unchecked' ? null : running.workflows,
      askedOf,
      remove: plan.remove,
      keep: plan.keep,
      bytes,
      deletedFiles,
      abandonedWrites: abandoned,
    });
    return;
  }
  printLine(`store ${store.location}`);
  printLine(
    running === 'unchecked'
      ? 'running sweeps: not checked (--offline)'
      : `running sweep workflows, asked of ${askedOf}: ${running.workflows.length}` +
          (running.workflows.length > 0 ? ` (${running.workflows.join(', ')})` : ''),
  );
  const verb = flags.yes ? 'deleted' : 'to delete';
  printLine(`\n${verb}: ${plural(plan.remove.length, 'artifact')}, ${binarySize(bytes)} of features`);
  if (plan.remove.length > 0) {
    printLine(
      table(
        ['key', 'what', 'size'],
        plan.remove.map((a) => [a.key, a.detail, a.bytes === undefined ? '' : binarySize(a.bytes)]),
      ),
    );
  }
  if (abandoned.length > 0) {
    printLine(
      `\n${verb}: ${plural(abandoned.length, 'unfinished write')}, ${binarySize(totalBytes(abandoned))}, left by writers stopped midway`,
    );
    printLine(
      table(
        ['artifact', 'size', 'last written'],
        abandoned.map((write) => [write.key, binarySize(write.bytes), shortTime(write.lastActivity)]),
      ),
    );
  }
  printLine(
    `\nkept: ${plural(plan.keep.length, 'artifact')}, ${binarySize(totalBytes(plan.keep))} of features`,
  );
  if (plan.keep.length > 0)
    printLine(
      table(
        ['key', 'why'],
        plan.keep.map((a) => [a.key, a.reason]),
      ),
    );
  if (!flags.yes && (plan.remove.length > 0 || abandoned.length > 0))
    printLine('\nnothing deleted yet: run again with --yes to delete them');
}

interface ForgetFlags extends StoreFlags, JsonFlag {
  yes?: boolean;
}

async function forgetCommand(sweep: string, flags: ForgetFlags): Promise<void> {
  const { store } = await openCheckedStore(flags);
  const results = await findStoredSweep(store, sweep);
  const keys = await forgetSweep(store, results.sweep, { remove: Boolean(flags.yes) });
  if (flags.json) {
    printJson({ location: store.location, sweep: results.sweep, deleted: Boolean(flags.yes), keys });
    return;
  }
  const reports = keys.filter((key) => key.startsWith('reports/')).length;
  printLine(
    `${flags.yes ? 'deleted' : 'to delete'}: sweep '${results.sweep}' (finished ${shortTime(results.finishedAt)}, ` +
      `${plural(results.completed.length, 'configuration')}): ${keys.length - reports} result files and ${reports} report files`,
  );
  printLine(
    flags.yes
      ? 'its features and heads stay: `infodisent store prune` deletes those no other sweep uses'
      : 'nothing deleted yet: run again with --yes to delete them',
  );
}

interface HistoryFlags extends StoreFlags, JsonFlag {
  last: number;
}

async function historyCommand(sweep: string, flags: HistoryFlags): Promise<void> {
  const { store } = await openCheckedStore(flags);
  const results = await findStoredSweep(store, sweep);
  const runs = await sweepRuns(store, results.sweep);
  const history = resultsHistory(runs.slice(-flags.last));
  if (flags.json) {
    printJson({ location: store.location, ...history, storedRuns: runs.length });
    return;
  }
  printLine(
    `sweep '${history.sweep}': ${plural(runs.length, 'stored run')}` +
      (runs.length > history.runs.length ? `, the last ${history.runs.length} shown (--last)` : ''),
  );
  printTable(historyTable(history));
}

export function registerStoreCommands(program: Command): void {
  const store = program
    .command('store')
    .description(
      'what an artifact store holds: finished sweeps, feature sets and trained heads, with their sizes',
    );
  addStoreOptions(
    store
      .command('ls')
      .description(
        'list the sweeps with results, the feature sets (size, map, dtype) and the heads, each with the stored sweeps that use it',
      )
      .option('--json', 'print the inventory as JSON'),
  ).action((flags: StoreFlags & JsonFlag) => listCommand(flags));
  addStoreOptions(
    store
      .command('forget')
      .argument('<sweep>', "the sweep's name (from its file)")
      .description(
        "delete a finished sweep's results and report (lists them; --yes deletes); store prune then frees what only it used",
      )
      .option('--yes', 'delete them (without it, only list what would go)')
      .option('--json', 'print what is (or would be) deleted as JSON'),
  ).action((sweep: string, flags: ForgetFlags) => forgetCommand(sweep, flags));
  addStoreOptions(
    store
      .command('history')
      .argument('<sweep>', "the sweep's name (from its file)")
      .description("each head's top-1 over a sweep's runs (e.g. scheduled re-evaluations), oldest first")
      .option('--last <n>', 'only the last n runs', positiveInt, 8)
      .option('--json', 'print the history as JSON'),
  ).action((sweep: string, flags: HistoryFlags) => historyCommand(sweep, flags));
  addConnectionOptions(
    addStoreOptions(
      store
        .command('prune')
        .description(
          'delete the feature sets, heads and explanation summaries that no stored sweep uses and no running sweep has resolved, and writes left unfinished over an hour ago (lists them; --yes deletes)',
        )
        .option('--yes', 'delete them (without it, only list what would go)')
        .option(
          '--incomplete',
          'also delete cut-off extractions and training checkpoints (kept while any sweep runs)',
        )
        .option('--offline', 'do not ask Temporal about running sweeps: for a store no sweep is using now')
        .option('--json', 'print the plan (and what was deleted) as JSON'),
    ),
  ).action((flags: PruneFlags, command: Command) => pruneCommand(flags, command));
}
