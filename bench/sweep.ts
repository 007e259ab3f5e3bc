import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runEmbedded } from '../client/commands/run';
import { loadSweepFile } from '../core/config/experiment';
import type { HeadKind } from '../core/method/head';
import * as stages from '../core/pipeline/stages';
import { LocalArtifactStore } from '../core/store/local-store';
import { machineDescription } from '../core/util/machine';
import type { BenchRow } from './rows';

/** Every stage of every configuration, called in this process in the workflow's order, nothing cached. */
async function runDirect(file: string, home: string): Promise<void> {
  const sweep = await loadSweepFile(file);
  const store = new LocalArtifactStore(path.join(home, 'store'));
  const context: stages.StageContext = { store, storeUrl: store.root, dataDir: path.join(home, 'datasets') };
  const summaryKeys: string[] = [];
  for (const configuration of sweep.configurations) {
    const dataset = await stages.prepareDataset(context, configuration);
    const train = await stages.extractSplit(context, configuration, dataset, 'train');
    const test = await stages.extractSplit(context, configuration, dataset, 'test');
    const trained: stages.TrainedHeadRef[] = [];
    for (const kind of ['baseline', 'infodisent'] as HeadKind[]) {
      const head = await stages.trainHeadStage(context, configuration, kind, train);
      await stages.evaluateStage(context, configuration, head, test);
      trained.push(head);
    }
    summaryKeys.push(
      (await stages.explainStage(context, configuration, dataset, train, test, trained)).summaryKey,
    );
  }
  await stages.reportStage(context, {
    sweep: sweep.name,
    generatedAt: new Date().toISOString(),
    failed: [],
    summaryKeys,
  });
}

async function timed(work: (home: string) => Promise<unknown>): Promise<number> {
  const home = await mkdtemp(path.join(os.tmpdir(), 'infodisent-bench-sweep-'));
  try {
    const start = performance.now();
    await work(home);
    return (performance.now() - start) / 1000;
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

/** A sweep through Temporal (dev server, worker, stage threads) against the same stages called directly. */
export async function benchSweep(file: string): Promise<BenchRow[]> {
  const sweep = await loadSweepFile(file);
  const direct = await timed((home) => runDirect(file, home));
  const orchestrated = await timed((home) => runEmbedded(sweep, { home, persistent: false, log: () => {} }));
  return [
    {
      case: `sweep '${sweep.name}' from nothing cached: Temporal dev server + worker vs the stages called in one process`,
      metric: 'wall time',
      unit: 's',
      value: orchestrated,
      reference: 'the same stages called directly, in order, in one process',
      reference_value: direct,
      ratio: orchestrated / direct,
      backend: sweep.configurations.map((c) => c.backend).join(','),
      machine: machineDescription(),
    },
  ];
}
