import {
  type Client,
  WorkflowExecutionAlreadyStartedError,
  type WorkflowExecutionDescription,
  WorkflowFailedError,
  WorkflowNotFoundError,
} from '@temporalio/client';
import { type Command, Option } from 'commander';
import type { SweepResults } from '../../core/pipeline/results';
import { plural } from '../../core/util/plural';
import type { SweepInput, sweepWorkflow } from '../../workflows/sweep';
import {
  addConnectionOptions,
  addQueueOptions,
  type ConnectionFlags,
  type QueueFlags,
  queuesFrom,
  withClient,
} from '../connection';
import {
  bar,
  CliError,
  type JsonFlag,
  positiveInt,
  printJson,
  printLine,
  resultsReport,
  shortTime,
  table,
} from '../output';
import {
  type ConfigurationView,
  followSweep,
  progressDetail,
  readSweepView,
  unansweredProgress,
} from '../progress-view';
import { livePollers, queuePollers } from '../queue-workers';
import {
  addOnlyOption,
  addSweepRunOptions,
  loadSweep,
  type OnlyFlag,
  type SweepRunFlags,
  sweepInput,
  sweepMemo,
} from '../sweep-file';
import { startedWith } from '../sweep-history';
import { sweepWorkflowId } from './run';

/** The workflow type name, for starts by name and visibility queries (the client never loads workflow code). */
export const SWEEP_WORKFLOW_TYPE = 'sweepWorkflow';

/** Statuses after which `sweep resume` starts the sweep again. */
const RESUMABLE = new Set(['FAILED', 'TERMINATED', 'CANCELLED', 'TIMED_OUT']);

/** `sweep list --status` values and their names in visibility queries. */
const LIST_STATUSES: Record<string, string> = {
  running: 'Running',
  completed: 'Completed',
  failed: 'Failed',
  cancelled: 'Canceled',
  canceled: 'Canceled',
  terminated: 'Terminated',
  'timed-out': 'TimedOut',
};

const note = (text: string) => process.stderr.write(`${text}\n`);

/** Starts a sweep run; a run already in progress under the id is an error that says how to follow it. */
async function startRun(
  client: Client,
  workflowId: string,
  taskQueue: string,
  input: SweepInput,
  memo: Record<string, unknown>,
) {
  try {
    return await client.workflow.start<typeof sweepWorkflow>(SWEEP_WORKFLOW_TYPE, {
      workflowId,
      taskQueue,
      args: [input],
      memo,
    });
  } catch (error) {
    if (error instanceof WorkflowExecutionAlreadyStartedError) {
      throw new CliError(
        `sweep workflow '${workflowId}' is already running: follow it with ` +
          `'infodisent sweep status ${workflowId} --follow', or start this one under another --id`,
      );
    }
    throw error;
  }
}

async function describeSweep(client: Client, workflowId: string): Promise<WorkflowExecutionDescription> {
  let description: WorkflowExecutionDescription;
  try {
    description = await client.workflow.getHandle(workflowId).describe();
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) {
      throw new CliError(`no workflow '${workflowId}' in namespace '${client.options.namespace}'`);
    }
    throw error;
  }
  if (description.type !== SWEEP_WORKFLOW_TYPE) {
    throw new CliError(`workflow '${workflowId}' is a ${description.type}, not a sweep`);
  }
  return description;
}

/** Follows a running sweep to its end, then prints its results; exit code 1 if a configuration failed. */
async function followToResults(client: Client, workflowId: string, json: boolean | undefined): Promise<void> {
  const handle = client.workflow.getHandle<typeof sweepWorkflow>(workflowId);
  let results: SweepResults;
  let resultKeys: string[];
  try {
    ({ results, resultKeys } = await followSweep(client, workflowId, handle.result()));
  } catch (error) {
    if (!(error instanceof WorkflowFailedError)) throw error;
    throw new CliError(
      `sweep '${workflowId}' did not complete: ${error.cause?.message ?? error.message}. ` +
        `Finished work is kept: 'infodisent sweep resume ${workflowId}' continues it`,
      1,
      { cause: error },
    );
  }
  if (json) printJson({ workflowId, status: 'COMPLETED', results, resultKeys });
  else printLine(`\n${resultsReport(results)}\n\nresults (in the workers' store): ${resultKeys.join(', ')}`);
  if (results.failed.length > 0) {
    note(`\n${failedHint(results, workflowId)}`);
    process.exitCode = 1;
  }
}

/** What to do about a finished sweep's failed configurations. */
function failedHint(results: SweepResults, workflowId: string): string {
  return (
    `${plural(results.failed.length, 'configuration')} failed: fix the cause, then \`infodisent sweep start FILE\` ` +
    `(or \`infodisent sweep resume ${workflowId}\` where the file is unchanged); the stages that finished are reused`
  );
}

interface StartFlags extends ConnectionFlags, QueueFlags, JsonFlag, OnlyFlag, SweepRunFlags {
  id?: string;
  wait?: boolean;
}

/**
 * What the workers polling a new sweep's queues mean for it: a queue nobody serves (the sweep waits), or more
 * GPU workers than --parallelism keeps busy (each configuration has one GPU stage at a time).
 */
export function workerNotes(
  { queues, parallelism, sweep }: SweepInput,
  workers: { cpu: number; gpu: number },
): string[] {
  const notes: string[] = [];
  if (workers.cpu === 0)
    notes.push(
      `no worker polls '${queues.cpu}' yet, where the sweep's workflows run: it waits for one (infodisent worker --queues cpu)`,
    );
  if (workers.gpu === 0)
    notes.push(
      `no worker polls '${queues.gpu}' yet: extraction and training wait for one (infodisent worker --queues gpu)`,
    );
  const busy = Math.min(workers.gpu, sweep.configurations.length);
  if (busy > parallelism)
    notes.push(
      `${workers.gpu} workers poll '${queues.gpu}', and --parallelism ${parallelism} runs ${parallelism} ` +
        `configurations at once, each with one GPU stage at a time: --parallelism ${busy} would keep ${busy} of them busy`,
    );
  return notes;
}

async function startCommand(file: string, flags: StartFlags): Promise<void> {
  // Validation comes first: a bad file never reaches Temporal.
  const sweep = await loadSweep(file, flags);
  const input = sweepInput(sweep, queuesFrom(flags), flags);
  const workflowId = flags.id ?? sweepWorkflowId(sweep);
  await withClient(flags, async (client) => {
    const handle = await startRun(client, workflowId, input.queues.cpu, input, sweepMemo(sweep));
    const [cpu, gpu] = await Promise.all([
      queuePollers(client, input.queues.cpu, true),
      queuePollers(client, input.queues.gpu),
    ]);
    // Temporal lists a stopped worker for minutes after its last poll: only those seen lately count.
    const workers = { cpu: livePollers(cpu).length, gpu: livePollers(gpu).length };
    for (const line of workerNotes(input, workers)) note(`note: ${line}`);
    const started = {
      workflowId,
      runId: handle.firstExecutionRunId,
      sweep: sweep.name,
      configurations: sweep.configurations.length,
      taskQueue: input.queues.cpu,
    };
    const summary =
      `started sweep '${sweep.name}' (${plural(sweep.configurations.length, 'configuration')}) as workflow ${workflowId} ` +
      `on task queue '${input.queues.cpu}'`;
    if (!flags.wait) {
      if (flags.json) printJson(started);
      else printLine(summary);
      return;
    }
    note(`${summary}; following it (Ctrl-C stops following, not the sweep)`);
    await followToResults(client, workflowId, flags.json);
  });
}

interface StatusFlags extends ConnectionFlags, JsonFlag {
  follow?: boolean;
}

function viewLine(view: ConfigurationView): string[] {
  return [
    view.name,
    view.status,
    bar(view.done, view.total),
    view.heartbeat ? `${view.stage} ${view.done}/${view.total}` : view.stage,
    progressDetail(view),
  ];
}

/**
 * "3 of 14 configurations done, 2 running, 9 pending": a sweep's state at a glance under its table (any other
 * status, 'cancelled' or a closed sweep's 'terminated', counted after those).
 */
export function statusCounts(configurations: readonly ConfigurationView[]): string {
  const count = (status: string) => configurations.filter((c) => c.status === status).length;
  const statuses = new Set(['running', 'pending', 'failed', ...configurations.map((c) => c.status)]);
  statuses.delete('done');
  const others = [...statuses]
    .map((status) => [status, count(status)] as const)
    .filter(([, n]) => n > 0)
    .map(([status, n]) => `${n} ${status}`);
  return [`${count('done')} of ${plural(configurations.length, 'configuration')} done`, ...others].join(', ');
}

/** What became of the configurations a sweep that closed without completing left running or pending. */
const CLOSED_AS: Record<string, { running: string; pending: string }> = {
  TERMINATED: { running: 'terminated', pending: 'not started' },
  CANCELLED: { running: 'cancelled', pending: 'cancelled' },
  TIMED_OUT: { running: 'timed out', pending: 'not started' },
  FAILED: { running: 'stopped', pending: 'not started' },
};

/**
 * A closed sweep's configurations: the progress query replays its last state, in which the configurations it
 * was running when it was terminated (or cancelled, or timed out) still read 'running'.
 */
export function closedViews(status: string, views: ConfigurationView[]): ConfigurationView[] {
  const closedAs = CLOSED_AS[status];
  if (!closedAs) return views;
  return views.map((view) => {
    if (view.status !== 'running' && view.status !== 'pending') return view;
    const { activity: _activity, ...rest } = view;
    return { ...rest, status: closedAs[view.status] };
  });
}

async function statusCommand(workflowId: string, flags: StatusFlags): Promise<void> {
  await withClient(flags, async (client) => {
    const description = await describeSweep(client, workflowId);
    const status = description.status.name;
    if (flags.follow && status === 'RUNNING') return followToResults(client, workflowId, flags.json);
    let configurations: ConfigurationView[] | undefined;
    let progressError: string | undefined;
    let results: SweepResults | undefined;
    if (status === 'COMPLETED') {
      results = (await client.workflow.getHandle<typeof sweepWorkflow>(workflowId).result()).results;
    } else {
      try {
        configurations = closedViews(status, await readSweepView(client, workflowId));
      } catch (error) {
        progressError = await unansweredProgress(client, description.taskQueue, error);
      }
    }
    const header = {
      workflowId,
      runId: description.runId,
      status,
      taskQueue: description.taskQueue,
      startTime: description.startTime.toISOString(),
      closeTime: description.closeTime?.toISOString() ?? null,
    };
    if (flags.json) {
      printJson({
        ...header,
        configurations: configurations ?? null,
        ...(progressError ? { progressError } : {}),
        ...(results ? { results } : {}),
      });
      return;
    }
    printLine(
      `${workflowId}  ${status}  started ${shortTime(description.startTime)}  task queue ${description.taskQueue}`,
    );
    if (configurations) {
      printLine(
        table(['configuration', 'status', 'progress', 'stage', 'detail'], configurations.map(viewLine)),
      );
      printLine(statusCounts(configurations));
    }
    if (progressError) printLine(progressError);
    if (results) printLine(resultsReport(results));
    if (results && results.failed.length > 0) printLine(`\n${failedHint(results, workflowId)}`);
    if (RESUMABLE.has(status)) printLine(`resume it with 'infodisent sweep resume ${workflowId}'`);
  });
}

interface ResumeFlags extends ConnectionFlags, JsonFlag {
  parallelism?: number;
  wait?: boolean;
}

async function resumeCommand(workflowId: string, flags: ResumeFlags): Promise<void> {
  await withClient(flags, async (client) => {
    const description = await describeSweep(client, workflowId);
    const status = description.status.name;
    const previous = { workflowId, previousRunId: description.runId, previousStatus: status };
    let reason: string | undefined;
    if (status === 'RUNNING')
      reason = `sweep '${workflowId}' is running (run ${description.runId}): nothing to resume`;
    else if (status === 'COMPLETED') {
      const { results } = await client.workflow.getHandle<typeof sweepWorkflow>(workflowId).result();
      if (results.failed.length === 0)
        reason = `sweep '${workflowId}' completed without failures: nothing to resume`;
    } else if (!RESUMABLE.has(status)) reason = `sweep '${workflowId}' is ${status}: it cannot be resumed`;
    if (reason) {
      if (flags.json) printJson({ ...previous, resumed: false, reason });
      else printLine(reason);
      return;
    }
    const started = await startedWith(client, workflowId, description.runId);
    const input = { ...started.input, ...(flags.parallelism ? { parallelism: flags.parallelism } : {}) };
    const handle = await startRun(client, workflowId, started.taskQueue, input, started.memo);
    const summary =
      `resumed sweep '${input.sweep.name}' (${status.toLowerCase()} run ${description.runId}) as run ` +
      `${handle.firstExecutionRunId} of ${workflowId}: finished work is reused`;
    if (!flags.wait) {
      if (flags.json) printJson({ ...previous, resumed: true, runId: handle.firstExecutionRunId });
      else printLine(summary);
      return;
    }
    note(summary);
    await followToResults(client, workflowId, flags.json);
  });
}

async function cancelCommand(workflowId: string, flags: ConnectionFlags): Promise<void> {
  await withClient(flags, async (client) => {
    const description = await describeSweep(client, workflowId);
    if (description.status.name !== 'RUNNING') {
      throw new CliError(`sweep '${workflowId}' is not running (${description.status.name})`);
    }
    await client.workflow.getHandle(workflowId).cancel();
    printLine(
      `cancellation of sweep '${workflowId}' requested: running activities stop at their next heartbeat. ` +
        `'infodisent sweep resume ${workflowId}' continues it later`,
    );
  });
}

interface ListFlags extends ConnectionFlags, JsonFlag {
  limit: number;
  status?: string;
}

/** "12/14 done, 1 failed": how far a listed sweep got, where its memo counts it. */
export function tally(sweep: {
  configurations: number | null;
  done: number | null;
  failed: number | null;
  cancelled?: number | null;
}): string {
  if (sweep.configurations === null || sweep.done === null) return '';
  return (
    `${sweep.done}/${sweep.configurations} done` +
    (sweep.failed ? `, ${sweep.failed} failed` : '') +
    (sweep.cancelled ? `, ${sweep.cancelled} cancelled` : '')
  );
}

/**
 * A count from a listed sweep's memo. The memo gets its counts as configurations finish: a sweep without
 * them is one that finished none (it runs, or closed before any did); a completed one is from before the
 * memo counted (null: unknown).
 */
function memoCount(memo: Record<string, unknown> | undefined, name: string, status: string): number | null {
  const value = memo?.[name];
  if (typeof value === 'number') return value;
  return status === 'COMPLETED' ? null : 0;
}

async function listCommand(flags: ListFlags): Promise<void> {
  const status = flags.status ? ` AND ExecutionStatus = '${LIST_STATUSES[flags.status]}'` : '';
  await withClient(flags, async (client) => {
    const sweeps = [];
    for await (const info of client.workflow.list({
      query: `WorkflowType = '${SWEEP_WORKFLOW_TYPE}'${status}`,
      pageSize: flags.limit,
    })) {
      sweeps.push({
        workflowId: info.workflowId,
        runId: info.runId,
        status: info.status.name,
        sweep: (info.memo?.['sweep'] as string | undefined) ?? null,
        configurations: (info.memo?.['configurations'] as number | undefined) ?? null,
        // Counted in the memo as configurations finish (sweeps completed before that: null).
        done: memoCount(info.memo, 'done', info.status.name),
        failed: memoCount(info.memo, 'failed', info.status.name),
        cancelled: memoCount(info.memo, 'cancelled', info.status.name),
        taskQueue: info.taskQueue,
        startTime: info.startTime.toISOString(),
        closeTime: info.closeTime?.toISOString() ?? null,
      });
      if (sweeps.length >= flags.limit) break;
    }
    if (flags.json) {
      printJson({ sweeps });
      return;
    }
    if (sweeps.length === 0) {
      printLine('no sweeps');
      return;
    }
    printLine(
      table(
        ['workflow id', 'status', 'sweep', 'configurations', 'started', 'closed'],
        sweeps.map((s) => [
          s.workflowId,
          s.status,
          s.sweep ?? '',
          tally(s),
          shortTime(s.startTime),
          shortTime(s.closeTime),
        ]),
      ),
    );
  });
}

export function registerSweepCommands(program: Command): void {
  const sweep = program
    .command('sweep')
    .description('run sweeps on a Temporal cluster whose workers run `infodisent worker`');

  const start = sweep
    .command('start')
    .description('validate a sweep file and start it as a workflow; prints the workflow id')
    .argument('<file>', 'sweep configuration (JSON)')
    .option('--id <workflowId>', 'workflow id (default: sweep-<name>)')
    .option('--wait', 'follow the progress until the sweep ends, then print the results table')
    .option('--json', 'print the started workflow (with --wait: the results) as JSON');
  addQueueOptions(start);
  addSweepRunOptions(start);
  addOnlyOption(start);
  addConnectionOptions(start).action((file: string, flags: StartFlags) => startCommand(file, flags));

  addConnectionOptions(
    sweep
      .command('status')
      .description(
        "a sweep's state and each configuration's progress (running sweeps need a worker to answer)",
      )
      .argument('<workflowId>', 'sweep workflow id')
      .option('--follow', 'follow a running sweep until it ends, then print the results table')
      .option('--json', 'print the state as JSON'),
  ).action((workflowId: string, flags: StatusFlags) => statusCommand(workflowId, flags));

  addConnectionOptions(
    sweep
      .command('resume')
      .description(
        'start a failed, terminated, cancelled or timed-out sweep (or a completed one with failed configurations) ' +
          'again under the same id with the same input; finished work is reused from the store',
      )
      .argument('<workflowId>', 'sweep workflow id')
      .option('--parallelism <n>', 'configurations run at once (default: as before)', positiveInt)
      .option('--wait', 'follow the progress until the sweep ends, then print the results table')
      .option('--json', 'print the outcome as JSON'),
  ).action((workflowId: string, flags: ResumeFlags) => resumeCommand(workflowId, flags));

  addConnectionOptions(
    sweep
      .command('cancel')
      .description('cancel a running sweep (resume it later with `sweep resume`)')
      .argument('<workflowId>', 'sweep workflow id'),
  ).action((workflowId: string, flags: ConnectionFlags) => cancelCommand(workflowId, flags));

  addConnectionOptions(
    sweep
      .command('list')
      .description('recent sweep workflows, newest first (from the visibility store)')
      .option('--limit <n>', 'at most this many', positiveInt, 20)
      .addOption(
        new Option('--status <status>', 'only sweeps in this state').choices(Object.keys(LIST_STATUSES)),
      )
      .option('--json', 'print {"sweeps": [...]}'),
  ).action((flags: ListFlags) => listCommand(flags));
}
