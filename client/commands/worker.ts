import path from 'node:path';
import { type Command, Option } from 'commander';
import { adapterCheck } from '../../core/diagnostics/checks';
import { webhookOrigin } from '../../core/pipeline/notify';
import { BACKENDS, type BackendChoice, selectBackend, webgpuAdapterStatus } from '../../core/tf/backend';
import { createWorkers, type QueueRole } from '../../worker/worker';
import {
  addConnectionOptions,
  addDataDirOption,
  addNotifyOption,
  addQueueOptions,
  addStoreOptions,
  type ConnectionFlags,
  connectNative,
  type NotifyFlag,
  openCheckedStore,
  type QueueFlags,
  queuesFrom,
  type StoreFlags,
} from '../connection';
import { commaSeparated, positiveInt } from '../output';

interface WorkerFlags extends ConnectionFlags, StoreFlags, QueueFlags, NotifyFlag {
  queues: QueueRole[];
  backend: BackendChoice;
  gpuConcurrency: number;
  cpuConcurrency: number;
  dataDir: string;
}

async function runWorker(flags: WorkerFlags): Promise<void> {
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const { url, store } = await openCheckedStore(flags);
  const backend = await selectBackend(flags.backend);
  const adapter = backend === 'webgpu' ? webgpuAdapterStatus() : undefined;
  log(
    `tfjs backend: ${backend}${flags.backend === 'auto' ? ' (auto)' : ''}` +
      (adapter?.found
        ? ` on ${adapter.description}${adapter.software ? ': a software adapter, far slower than wasm (infodisent doctor)' : ''}`
        : ''),
  );
  // Several GPUs here: every worker on this machine would train on the first (the doctor's webgpu check).
  const shared = adapter?.found && !adapter.software ? adapterCheck(adapter, backend) : undefined;
  if (shared?.status === 'warn') log(`warning: ${shared.summary}`);
  const queues = queuesFrom(flags);
  const connection = await connectNative(flags);
  try {
    const workers = await createWorkers({
      connection,
      namespace: flags.namespace,
      queues,
      roles: flags.queues,
      location: { storeUrl: url, dataDir: path.resolve(flags.dataDir), backend },
      gpuConcurrency: flags.gpuConcurrency,
      cpuConcurrency: flags.cpuConcurrency,
      notifyUrl: flags.notifyUrl,
      stageLog: log,
    });
    const served = flags.queues.map((role) => `${role} queue '${queues[role]}'`).join(' and ');
    log(
      // Its identity is how `sweep status` and Temporal's UI name it.
      `serving ${served} of ${flags.address} (namespace ${flags.namespace}) as ${workers[0]!.options.identity}; ` +
        `artifacts in ${store.location}. ` +
        'SIGINT/SIGTERM stops it: running activities get a few seconds, then are retried elsewhere.',
    );
    if (flags.notifyUrl && flags.queues.includes('cpu'))
      log(`a finished sweep is posted to the webhook at ${webhookOrigin(flags.notifyUrl)}`);
    // The SDK's runtime shuts the workers down on these signals; a second one kills the process at once.
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => log(`${signal}: shutting down (again to stop at once) …`));
    }
    await Promise.all(workers.map((worker) => worker.run()));
    log('worker stopped');
  } finally {
    await connection.close();
  }
}

export function registerWorkerCommand(program: Command): void {
  const command = program
    .command('worker')
    .description(
      'serve task queues of a (remote) Temporal until SIGINT/SIGTERM: the GPU queue runs feature extraction and ' +
        'head training/evaluation, the CPU queue runs workflows, datasets and results',
    )
    .addOption(
      new Option('--queues <roles>', 'queues to serve, comma-separated: gpu, cpu')
        .default(['gpu', 'cpu'], 'gpu,cpu')
        .argParser(commaSeparated<QueueRole>(['gpu', 'cpu'])),
    )
    .addOption(
      new Option('--backend <name>', 'tfjs backend to start, printed at startup')
        .choices(['auto', ...BACKENDS])
        .default('auto'),
    )
    .option('--gpu-concurrency <n>', 'activities at once on the GPU queue (one device: 1)', positiveInt, 1)
    .option('--cpu-concurrency <n>', 'activities at once on the CPU queue', positiveInt, 2);
  addNotifyOption(command);
  addQueueOptions(command);
  addConnectionOptions(command);
  addStoreOptions(command);
  command.option('--create-bucket', "create the s3:// store's bucket if it does not exist");
  addDataDirOption(command).action((flags: WorkerFlags) => runWorker(flags));
}
