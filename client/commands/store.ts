import type { Command } from 'commander';
import { storeInventory } from '../../core/pipeline/inventory';
import { addStoreOptions, openCheckedStore, type StoreFlags } from '../connection';
import { type JsonFlag, printJson, printLine, shortTime, table } from '../output';

/** "125.4 MiB": a size in bytes in binary units. */
export function binarySize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

const usedBy = (sweeps: readonly string[]) => (sweeps.length > 0 ? sweeps.join(', ') : '(no stored sweep)');

async function listCommand(flags: StoreFlags & JsonFlag): Promise<void> {
  const { store } = await openCheckedStore(flags);
  const inventory = await storeInventory(store);
  if (flags.json) {
    printJson(inventory);
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
        ['sweep', 'finished', 'configurations', 'failed'],
        inventory.sweeps.map((s) => [
          s.sweep,
          shortTime(s.finishedAt),
          String(s.completed),
          String(s.failed),
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
                String(c.images),
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
}
