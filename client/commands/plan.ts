import type { Command } from 'commander';
import { type ConfigurationPlan, planSweep, type SplitPlan } from '../../core/pipeline/plan';
import { addDataDirOption, addStoreOptions, openCheckedStore, type StoreFlags } from '../connection';
import { binarySize, type JsonFlag, printJson, printLine, table } from '../output';
import { addOnlyOption, loadSweep, type OnlyFlag } from '../sweep-file';

interface PlanFlags extends StoreFlags, JsonFlag, OnlyFlag {
  dataDir: string;
}

function splitCell(split: SplitPlan): string {
  const size = binarySize(split.bytes);
  if (split.state === 'cached') return `cached, ${size}`;
  if (split.state === 'partial') return `resume (${split.shards} shards), ${size}`;
  return `extract ${split.images} images, ${size}`;
}

function headsCell(plan: ConfigurationPlan): string {
  return plan.heads
    .map((head) =>
      head.state === 'train' ? `${head.kind}: train` : `${head.kind}: ${head.state} (${head.backend})`,
    )
    .join('; ');
}

async function planCommand(file: string, flags: PlanFlags): Promise<void> {
  const sweep = await loadSweep(file, flags);
  const { store } = await openCheckedStore(flags);
  const plan = await planSweep(
    { store, dataDir: flags.dataDir },
    sweep.configurations,
    (name, done, total) => {
      if (name && !flags.json) process.stderr.write(`reading ${name} (${done + 1}/${total}) …\n`);
    },
  );
  const splits = plan.planned.flatMap((p) => [p.features.train, p.features.test]);
  // Configurations that share features (seeds) count them once.
  const unique = [...new Map(splits.map((s) => [s.key, s])).values()];
  const bytes = (state: SplitPlan['state']) =>
    unique.filter((s) => s.state === state).reduce((sum, s) => sum + s.bytes, 0);
  const totals = {
    featureSets: unique.length,
    cachedBytes: bytes('cached'),
    toWriteBytes: bytes('extract') + bytes('partial'),
    imagesToExtract: unique.filter((s) => s.state !== 'cached').reduce((sum, s) => sum + s.images, 0),
    headsToTrain: plan.planned.flatMap((p) => p.heads).filter((h) => h.state !== 'trained').length,
  };
  if (flags.json) {
    printJson({ sweep: sweep.name, store: store.location, ...plan, totals });
  } else {
    printLine(`sweep '${sweep.name}' against ${store.location}`);
    if (plan.planned.length > 0) {
      printLine(
        table(
          ['configuration', 'dataset', 'map', 'train features', 'test features', 'heads'],
          plan.planned.map((p) => [
            p.configuration,
            `${p.dataset.name}: ${p.dataset.classes} classes, ${p.dataset.train}/${p.dataset.test} images` +
              (p.dataset.skipped > 0 ? `, ${p.dataset.skipped} skipped` : ''),
            `${p.backbone.map.height}x${p.backbone.map.width}x${p.backbone.map.channels}`,
            splitCell(p.features.train),
            splitCell(p.features.test),
            headsCell(p),
          ]),
        ),
      );
    }
    printLine(
      `\n${totals.featureSets} feature sets: ${binarySize(totals.cachedBytes)} cached, ` +
        `${binarySize(totals.toWriteBytes)} to write (${totals.imagesToExtract} images to extract); ` +
        `${totals.headsToTrain} heads to train`,
    );
    for (const failure of plan.failed) printLine(`CANNOT RUN ${failure.configuration}: ${failure.error}`);
  }
  if (plan.failed.length > 0) process.exitCode = 1;
}

export function registerPlanCommand(program: Command): void {
  addDataDirOption(
    addStoreOptions(
      addOnlyOption(
        program
          .command('plan')
          .description(
            "what a run of the sweep would do: reads each configuration's dataset and backbone, then lists the features and heads the store already has, what is left to compute, and its size",
          )
          .argument('<file>', 'sweep configuration file')
          .option('--json', 'print the plan as JSON'),
      ),
    ),
  ).action((file: string, flags: PlanFlags) => planCommand(file, flags));
}
