import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import {
  type Client,
  WorkflowExecutionAlreadyStartedError,
  type WorkflowHandle,
  WorkflowNotFoundError,
} from '@temporalio/client';
import { ConfigError, parseSweep, type Sweep } from '../../core/config/experiment';
import type { SweepResults } from '../../core/pipeline/results';
import { LocalArtifactStore } from '../../core/store/local-store';
import { plural } from '../../core/util/plural';
import { startLocalTemporal } from '../../infra/dev-server';
import { stateDir } from '../../infra/paths';
import { installRuntime } from '../../worker/runtime';
import { createWorkers, runWorkersUntil } from '../../worker/worker';
import { DEFAULT_TASK_QUEUES } from '../../workflows/progress';
import { sweepWorkflow } from '../../workflows/sweep';
import type { NotifyFlag } from '../connection';
import { CliError, resultsReport } from '../output';
import { followSweep } from '../progress-view';
import { loadSweep, type OnlyFlag, sweepMemo } from '../sweep-file';
import { startedWith } from '../sweep-history';

export interface EmbeddedRunOptions {
  /** Local state folder: Temporal's database, the artifact store, generated datasets. */
  home?: string;
  parallelism?: number;
  /** Keep the Temporal history in a database file (default true). */
  persistent?: boolean;
  /** A webhook the finished sweep is posted to. */
  notifyUrl?: string | undefined;
  /** Serve Temporal's web UI while the run lasts. */
  ui?: boolean;
  log?: (line: string) => void;
}

export interface EmbeddedRunResult {
  workflowId: string;
  results: SweepResults;
  resultFiles: string[];
}

export function sweepWorkflowId(sweep: Sweep): string {
  return `sweep-${sweep.name}`;
}

/**
 * The sweep workflow already running under this id (a run that was cut off): resumed when it runs the same
 * sweep; otherwise (the file or --only changed) stopped with its children, and `start`ed anew, reusing the
 * stages it finished from the store.
 */
async function resumeOrReplace(
  client: Client,
  workflowId: string,
  sweep: Sweep,
  start: () => Promise<WorkflowHandle<typeof sweepWorkflow>>,
  log: (line: string) => void,
): Promise<WorkflowHandle<typeof sweepWorkflow>> {
  const handle = client.workflow.getHandle<typeof sweepWorkflow>(workflowId);
  const description = await handle.describe();
  // An input the schema no longer accepts is another version of the sweep too.
  const running = await startedWith(client, workflowId, description.runId).catch((reason: unknown) => {
    if (reason instanceof ConfigError) return undefined;
    throw reason;
  });
  // Both as a workflow input reads back, so that only a real difference counts.
  if (running && isDeepStrictEqual(running.input.sweep, parseSweep(JSON.parse(JSON.stringify(sweep))))) {
    log(`sweep '${sweep.name}' was already running as ${workflowId}: resuming it`);
    return handle;
  }
  const reason = 'replaced by a run of another version of the sweep (infodisent run)';
  await handle.terminate(reason);
  // Its children end with it, but only eventually: end them now, so that none still holds a
  // configuration's workflow id when the new run starts that configuration.
  const children = (description.raw.pendingChildren ?? []).flatMap((c) =>
    c.workflowId ? [c.workflowId] : [],
  );
  await Promise.all(
    children.map((child) =>
      client.workflow
        .getHandle(child)
        .terminate(reason)
        .catch((error: unknown) => {
          if (!(error instanceof WorkflowNotFoundError)) throw error;
        }),
    ),
  );
  log(
    `sweep '${sweep.name}' was running as ${workflowId} with other configurations or settings: ` +
      'stopped it, starting this one (stages it finished are reused from the store)',
  );
  return start();
}

/**
 * The embedded default: a local Temporal dev server, an in-process worker on both task queues and the
 * local artifact store. A sweep already running under the same id (a run that was interrupted) is
 * resumed rather than started again.
 */
export async function runEmbedded(
  sweep: Sweep,
  options: EmbeddedRunOptions = {},
): Promise<EmbeddedRunResult> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const home = path.resolve(options.home ?? stateDir());
  const store = new LocalArtifactStore(path.join(home, 'store'));
  // Its progress and summary say why a configuration failed: the SDK's warnings would say it twice more.
  installRuntime({ failuresShown: true });
  log(`starting the local Temporal dev server (state in ${home}) …`);
  const temporal = await startLocalTemporal({
    stateDir: home,
    log,
    persistent: options.persistent ?? true,
    ui: options.ui ?? false,
  });
  let followed = false;
  try {
    log(`Temporal at ${temporal.address}; artifacts in ${store.location}`);
    if (temporal.uiAddress) log(`Temporal's web UI at ${temporal.uiAddress} while the run lasts`);
    const { client, nativeConnection } = temporal;
    const workers = await createWorkers({
      connection: nativeConnection,
      namespace: 'default',
      queues: DEFAULT_TASK_QUEUES,
      roles: ['gpu', 'cpu'],
      location: { storeUrl: store.root, dataDir: path.join(home, 'datasets') },
      notifyUrl: options.notifyUrl,
    });
    const workflowId = sweepWorkflowId(sweep);
    const input = { sweep, queues: DEFAULT_TASK_QUEUES, parallelism: options.parallelism ?? 2 };
    const start = () =>
      client.workflow.start(sweepWorkflow, {
        workflowId,
        taskQueue: DEFAULT_TASK_QUEUES.cpu,
        args: [input],
        memo: sweepMemo(sweep),
      });
    let handle: WorkflowHandle<typeof sweepWorkflow>;
    try {
      handle = await start();
      log(`sweep '${sweep.name}' started as workflow ${workflowId}`);
    } catch (error) {
      if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
      handle = await resumeOrReplace(client, workflowId, sweep, start, log);
    }
    const output = await runWorkersUntil(workers, followSweep(client, workflowId, handle.result()));
    followed = true;
    const resultFiles = [...output.resultKeys, output.reportKey].map((key) =>
      path.join(store.root, ...key.split('/')),
    );
    return { workflowId, results: output.results, resultFiles };
  } finally {
    // Cut short (a signal stopped the workers), the client may still be retrying a call.
    await (followed ? temporal.stop() : temporal.abandon());
  }
}

export async function runCommand(
  file: string,
  options: { home?: string; parallelism?: string; ui?: boolean } & OnlyFlag & NotifyFlag,
): Promise<void> {
  const sweep = await loadSweep(file, options);
  const started = Date.now();
  // The SDK's runtime stops the workers on SIGINT and SIGTERM (Ctrl-C, kill, a job scheduler's time limit);
  // the run then ends with the line below rather than the workers' shutdown error. A second signal ends it at
  // once (the dev server goes with this process's exit).
  let stoppedBy: NodeJS.Signals | undefined;
  const exitCode = (signal: NodeJS.Signals) => (signal === 'SIGINT' ? 130 : 143);
  const stopping = (signal: NodeJS.Signals) => {
    if (stoppedBy) process.exit(exitCode(signal));
    stoppedBy = signal;
    process.stderr.write(`${signal}: stopping the workers (again to stop at once) …\n`);
  };
  process.on('SIGINT', stopping).on('SIGTERM', stopping);
  let outcome: EmbeddedRunResult;
  try {
    outcome = await runEmbedded(sweep, {
      ...(options.home ? { home: options.home } : {}),
      ...(options.parallelism ? { parallelism: Number(options.parallelism) } : {}),
      notifyUrl: options.notifyUrl,
      ui: options.ui ?? false,
    });
  } catch (error) {
    if (!stoppedBy) throw error;
    throw new CliError(
      `${stoppedBy}: stopped. The sweep stays in the history at ${path.resolve(options.home ?? stateDir())}: ` +
        `\`infodisent run ${file}\` resumes it`,
      exitCode(stoppedBy),
    );
  } finally {
    process.off('SIGINT', stopping).off('SIGTERM', stopping);
  }
  const { results, resultFiles } = outcome;
  process.stdout.write(`\n${resultsReport(results)}\n\n`);
  process.stdout.write(
    `results (${((Date.now() - started) / 1000).toFixed(0)} s):\n${resultFiles.map((f) => `  ${f}`).join('\n')}\n`,
  );
  if (results.failed.length > 0) {
    process.stderr.write(
      `\n${plural(results.failed.length, 'configuration')} failed: fix the cause and run \`infodisent run ${file}\` ` +
        'again; the stages that finished are reused\n',
    );
    process.exitCode = 1;
  }
}
