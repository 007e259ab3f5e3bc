import type { Command } from 'commander';
import type { MeasuredRate, RateKey } from '../../core/pipeline/estimate';
import { type ConfigurationPlan, planSweep, type SplitPlan, type SweepPlan } from '../../core/pipeline/plan';
import { roughDuration } from '../../core/util/duration';
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

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

/** The time the work left takes at the rates measured before, each rate with what measured it; what has none. */
function estimateLines(plan: SweepPlan, seconds: { extraction: number; training: number }): string[] {
  const rates = new Map<RateKey, MeasuredRate>();
  for (const p of plan.planned)
    for (const { estimate } of [p.features.train, p.features.test, ...p.heads])
      if (estimate) rates.set(estimate.key, estimate.rate);
  const lines: string[] = [];
  if (rates.size > 0) {
    lines.push(
      `at the rates earlier runs in this store measured: extracting ${roughDuration(seconds.extraction)}, ` +
        `training at most ${roughDuration(seconds.training)}`,
    );
    for (const [key, rate] of rates) {
      const unit = key.startsWith('extract') ? 'images/s' : 'steps/s';
      const value = rate.perSecond < 10 ? rate.perSecond.toFixed(2) : Math.round(rate.perSecond);
      lines.push(`  ${key}: ${value} ${unit}, ${rate.runtime} on ${rate.hardware} (${rate.measuredBy})`);
    }
  }
  if (plan.unmeasured.length > 0) lines.push(`no rate measured yet for: ${plan.unmeasured.join(', ')}`);
  return lines;
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
    // At the rates earlier runs in the store measured: shared feature sets once; a head at most its steps.
    estimatedSeconds: {
      extraction: sum(unique.map((s) => s.estimate?.seconds ?? 0)),
      training: sum(plan.planned.flatMap((p) => p.heads.map((h) => h.estimate?.seconds ?? 0))),
    },
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
    for (const line of estimateLines(plan, totals.estimatedSeconds)) printLine(line);
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
            "what a run of the sweep would do: reads each configuration's dataset and backbone, then lists the features and heads the store already has, what is left to compute, its size, and its time at the rates earlier runs in the store measured",
          )
          .argument('<file>', 'sweep configuration file')
          .option('--json', 'print the plan as JSON'),
      ),
    ),
  ).action((file: string, flags: PlanFlags) => planCommand(file, flags));
}
