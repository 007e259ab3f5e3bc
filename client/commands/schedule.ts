import {
  type Client,
  ScheduleAlreadyRunning,
  type ScheduleHandle,
  ScheduleNotFoundError,
  type ScheduleSpec,
} from '@temporalio/client';
import type { Command } from 'commander';
import type { sweepWorkflow } from '../../workflows/sweep';
import {
  addConnectionOptions,
  addQueueOptions,
  type ConnectionFlags,
  type QueueFlags,
  queuesFrom,
  withClient,
} from '../connection';
import { CliError, durationMs, type JsonFlag, printJson, printLine, shortTime, table } from '../output';
import {
  addOnlyOption,
  addSweepRunOptions,
  loadSweep,
  type OnlyFlag,
  type SweepRunFlags,
  sweepInput,
  sweepMemo,
} from '../sweep-file';
import { sweepWorkflowId } from './run';
import { SWEEP_WORKFLOW_TYPE } from './sweep';

/** `--every`: an ms-style duration ('30m', '6h', '1d', '2 days') of at least a second. */
function intervalSpec(every: string): ScheduleSpec {
  return { intervals: [{ every: durationMs('--every', every, 1000) }] };
}

/** Runs `work` on a schedule's handle; an unknown id is reported by name. */
async function onSchedule<T>(
  client: Client,
  scheduleId: string,
  work: (handle: ScheduleHandle) => Promise<T>,
): Promise<T> {
  try {
    return await work(client.schedule.getHandle(scheduleId));
  } catch (error) {
    if (error instanceof ScheduleNotFoundError) {
      throw new CliError(`no schedule '${scheduleId}' in namespace '${client.options.namespace}'`, 1, {
        cause: error,
      });
    }
    throw error;
  }
}

interface CreateFlags extends ConnectionFlags, QueueFlags, JsonFlag, OnlyFlag, SweepRunFlags {
  every?: string;
  cron?: string;
  id?: string;
  paused?: boolean;
  note?: string;
}

async function createCommand(file: string, flags: CreateFlags): Promise<void> {
  const sweep = await loadSweep(file, flags);
  if (!flags.every === !flags.cron)
    throw new CliError('give exactly one of --every <duration> or --cron <expr>', 2);
  const spec = flags.every ? intervalSpec(flags.every) : { cronExpressions: [flags.cron!] };
  const when = flags.every ? { every: flags.every } : { cron: flags.cron! };
  const scheduleId = flags.id ?? `reevaluate-${sweep.name}`;
  const input = sweepInput(sweep, queuesFrom(flags), flags);
  await withClient(flags, async (client) => {
    let handle: ScheduleHandle;
    try {
      handle = await client.schedule.create<typeof sweepWorkflow>({
        scheduleId,
        spec,
        action: {
          type: 'startWorkflow',
          workflowType: SWEEP_WORKFLOW_TYPE,
          // Temporal appends each run's scheduled time to this id.
          workflowId: sweepWorkflowId(sweep),
          taskQueue: input.queues.cpu,
          args: [input],
          memo: { ...sweepMemo(sweep), schedule: scheduleId },
        },
        memo: { sweep: sweep.name, ...when },
        state: { paused: Boolean(flags.paused), ...(flags.note ? { note: flags.note } : {}) },
      });
    } catch (error) {
      if (error instanceof ScheduleAlreadyRunning) {
        throw new CliError(
          `schedule '${scheduleId}' already exists: delete it first, or choose another --id`,
        );
      }
      // The server checks cron expressions; its message says what is wrong.
      if (flags.cron && error instanceof Error && /cron/i.test(error.message)) {
        throw new CliError(`--cron '${flags.cron}': ${error.message}`, 2);
      }
      throw error;
    }
    const { info } = await handle.describe();
    const created = {
      scheduleId,
      sweep: sweep.name,
      ...when,
      taskQueue: input.queues.cpu,
      paused: Boolean(flags.paused),
      nextActionTimes: info.nextActionTimes.map((t) => t.toISOString()),
    };
    if (flags.json) printJson(created);
    else {
      printLine(
        `created schedule '${scheduleId}': sweep '${sweep.name}' ${flags.every ? `every ${flags.every}` : `on cron '${flags.cron}'`}` +
          `${flags.paused ? ' (paused)' : ''}, next ${created.nextActionTimes[0] ?? 'never'}`,
      );
    }
  });
}

interface ListFlags extends ConnectionFlags, JsonFlag {}

async function listCommand(flags: ListFlags): Promise<void> {
  await withClient(flags, async (client) => {
    const schedules = [];
    for await (const summary of client.schedule.list()) {
      const memo = summary.memo ?? {};
      schedules.push({
        scheduleId: summary.scheduleId,
        workflowType: summary.action?.workflowType ?? null,
        sweep: (memo['sweep'] as string | undefined) ?? null,
        every: (memo['every'] as string | undefined) ?? null,
        cron: (memo['cron'] as string | undefined) ?? null,
        paused: summary.state.paused,
        note: summary.state.note ?? null,
        nextActionTimes: summary.info.nextActionTimes.map((t) => t.toISOString()),
        recentActions: summary.info.recentActions.map((a) => ({
          scheduledAt: a.scheduledAt.toISOString(),
          takenAt: a.takenAt.toISOString(),
          workflowId: a.action.workflow.workflowId,
        })),
      });
    }
    if (flags.json) {
      printJson({ schedules });
      return;
    }
    if (schedules.length === 0) {
      printLine('no schedules (a schedule created a moment ago can take a second to be listed)');
      return;
    }
    printLine(
      table(
        ['schedule id', 'sweep', 'when', 'state', 'next run', 'note'],
        schedules.map((s) => [
          s.scheduleId,
          s.sweep ?? '',
          s.every ? `every ${s.every}` : s.cron ? `cron ${s.cron}` : '',
          s.paused ? 'paused' : 'active',
          s.paused ? '' : shortTime(s.nextActionTimes[0]),
          s.note ?? '',
        ]),
      ),
    );
  });
}

export function registerScheduleCommands(program: Command): void {
  const schedule = program
    .command('schedule')
    .description(
      're-evaluate sweeps on a timetable with Temporal Schedules (a run still going when the next is due is skipped)',
    );

  const create = schedule
    .command('create')
    .description("validate a sweep file and schedule it; the sweep is stored in the schedule's action")
    .argument('<file>', 'sweep configuration (JSON)')
    .option('--every <duration>', "interval, e.g. 30m, 6h, 1d, '2 days'")
    .option('--cron <expr>', "cron expression (UTC), e.g. '0 3 * * MON'")
    .option('--id <scheduleId>', 'schedule id (default: reevaluate-<sweep name>)')
    .option('--paused', 'create it paused')
    .option('--note <text>', "a note shown with the schedule's state")
    .option('--json', 'print the created schedule as JSON');
  addQueueOptions(create);
  addSweepRunOptions(create);
  addOnlyOption(create);
  addConnectionOptions(create).action((file: string, flags: CreateFlags) => createCommand(file, flags));

  addConnectionOptions(
    schedule
      .command('list')
      .description('schedules of the namespace with their state and next run')
      .option('--json', 'print {"schedules": [...]}'),
  ).action((flags: ListFlags) => listCommand(flags));

  const simple: {
    name: string;
    description: string;
    done: string;
    withNote?: boolean;
    run: (handle: ScheduleHandle, note: string | undefined) => Promise<void>;
  }[] = [
    {
      name: 'pause',
      description: 'pause a schedule (runs in progress go on)',
      done: 'paused',
      withNote: true,
      run: (handle, note) => handle.pause(note ?? 'paused with infodisent schedule pause'),
    },
    {
      name: 'unpause',
      description: 'unpause a schedule',
      done: 'unpaused',
      withNote: true,
      run: (handle, note) => handle.unpause(note ?? 'unpaused with infodisent schedule unpause'),
    },
    {
      name: 'delete',
      description: 'delete a schedule (runs it started go on)',
      done: 'deleted',
      run: (handle) => handle.delete(),
    },
    {
      name: 'trigger',
      description: 'start a run of the schedule now',
      done: 'triggered',
      run: (handle) => handle.trigger(),
    },
  ];
  for (const command of simple) {
    const sub = schedule
      .command(command.name)
      .description(command.description)
      .argument('<scheduleId>', 'schedule id');
    if (command.withNote) sub.option('--note <text>', "why: shown with the schedule's state");
    addConnectionOptions(sub).action((scheduleId: string, flags: ConnectionFlags & { note?: string }) =>
      withClient(flags, async (client) => {
        await onSchedule(client, scheduleId, (handle) => command.run(handle, flags.note));
        printLine(`schedule '${scheduleId}' ${command.done}`);
      }),
    );
  }
}
