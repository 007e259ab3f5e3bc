import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { redact } from '../client/output';
import { type LocalTemporal, startLocalTemporal } from '../infra/dev-server';
import { repoRoot } from '../infra/paths';
import { startTestSeaweedFs } from './support/seaweedfs';

const ROOT = repoRoot();
const CLI = path.join(ROOT, 'dist', 'client', 'main.js');
const SMOKE = path.join(ROOT, 'experiments', 'smoke.json');

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** The environment without any setting a developer's shell might leak into the CLI under test. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !/^(TEMPORAL_|INFODISENT_STORE|AWS_)/.test(name)),
  );
  return { ...env, ...extra };
}

function cli(args: string[], env: Record<string, string> = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { cwd: ROOT, env: cleanEnv(env), timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

function json<T>(outcome: Outcome): T {
  assert.equal(outcome.code, 0, `exit ${outcome.code}: ${outcome.stderr}`);
  return JSON.parse(outcome.stdout) as T;
}

const CONNECTION = [
  '--address',
  '--namespace',
  '--tls',
  '--tls-cert',
  '--tls-key',
  '--tls-ca',
  '--tls-server-name',
  '--api-key',
];
const QUEUES = ['--gpu-queue', '--cpu-queue'];
const STORE = ['--store', '--s3-endpoint', '--create-bucket'];

/** Every command the CLI has, with the options its help must list. */
const COMMANDS: Record<string, string[]> = {
  run: ['--home', '--parallelism'],
  explain: [
    '--config',
    '--configuration',
    '--head',
    '--top',
    '--out',
    '--json',
    '--store',
    '--s3-endpoint',
    '--data-dir',
  ],
  'config validate': ['--json'],
  'sweep start': ['--id', '--parallelism', '--wait', '--json', ...QUEUES, ...CONNECTION],
  'sweep status': ['--follow', '--json', ...CONNECTION],
  'sweep resume': ['--parallelism', '--wait', '--json', ...CONNECTION],
  'sweep cancel': CONNECTION,
  'sweep list': ['--limit', '--status', '--json', ...CONNECTION],
  'schedule create': [
    '--every',
    '--cron',
    '--id',
    '--parallelism',
    '--paused',
    '--note',
    '--json',
    ...QUEUES,
    ...CONNECTION,
  ],
  'schedule list': ['--json', ...CONNECTION],
  'schedule pause': ['--note', ...CONNECTION],
  'schedule unpause': ['--note', ...CONNECTION],
  'schedule delete': CONNECTION,
  'schedule trigger': CONNECTION,
  worker: [
    '--queues',
    '--backend',
    '--gpu-concurrency',
    '--cpu-concurrency',
    ...QUEUES,
    ...CONNECTION,
    ...STORE,
    '--data-dir',
  ],
};

/** The lines of one section ("Options:", "Commands:") of a commander help text. */
function section(help: string, title: string): string[] {
  const lines = help.split('\n');
  const start = lines.indexOf(`${title}:`);
  if (start < 0) return [];
  const end = lines.findIndex((line, i) => i > start && /^\S/.test(line));
  return lines.slice(start + 1, end < 0 ? undefined : end);
}

test('--help of every command lists its options, each with a description', async () => {
  const leaves = new Map<string, string>();
  const walk = async (words: string[]): Promise<void> => {
    const { code, stdout } = await cli([...words, '--help']);
    assert.equal(code, 0, `${words.join(' ')} --help`);
    const subcommands = section(stdout, 'Commands')
      .map((line) => /^ {2}([a-z][a-z-]*)/.exec(line)?.[1])
      .filter((name): name is string => name !== undefined && name !== 'help');
    if (subcommands.length === 0) leaves.set(words.join(' '), stdout);
    await Promise.all(subcommands.map((name) => walk([...words, name])));
  };
  await walk([]);
  assert.deepEqual([...leaves.keys()].sort(), Object.keys(COMMANDS).sort());
  for (const [command, help] of leaves) {
    const description = help.split('\n')[2] ?? '';
    assert.ok(description.trim().length > 10, `'${command}' has a description`);
    const options = section(help, 'Options');
    const listed = options.map((line) => /^ {2}(?:-\w, )?(--[a-z0-9-]+)/.exec(line)?.[1]).filter(Boolean);
    for (const option of COMMANDS[command]!)
      assert.ok(listed.includes(option), `'${command}' lists ${option}`);
    for (const line of options.filter((l) => /^ {2}-/.test(l))) {
      assert.match(
        line,
        /^ {2}\S.*\S {2,}\S/,
        `'${command}': the option line '${line.trim()}' has help text`,
      );
    }
  }
});

test('config validate --json lists the configurations', async () => {
  const { configurations } = json<{ configurations: Record<string, string>[] }>(
    await cli(['config', 'validate', SMOKE, '--json']),
  );
  assert.deepEqual(configurations, [
    {
      file: SMOKE,
      sweep: 'smoke',
      name: 'parts-mobilenetv2',
      dataset: 'parts',
      backbone: 'nsfwjs-mobilenet-v2',
    },
  ]);
});

describe('a bad sweep file stops every command before any work, naming the field', () => {
  let dir: string;
  const files: Record<string, string> = {};
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'infodisent-cli-'));
    const smoke = JSON.parse(await readFile(SMOKE, 'utf8'));
    const variants: Record<string, (sweep: typeof smoke) => void> = {
      backbone: (sweep) => {
        sweep.configurations[0].backbone.name = 'resnet-9000';
      },
      field: (sweep) => {
        sweep.configurations[0].heads.baseline.epoch = 3;
      },
    };
    for (const [name, change] of Object.entries(variants)) {
      const sweep = structuredClone(smoke);
      change(sweep);
      files[name] = path.join(dir, `${name}.json`);
      await writeFile(files[name], JSON.stringify(sweep));
    }
  });
  after(() => rm(dir, { recursive: true, force: true }));

  // Nothing listens on port 1: a command that tried to connect would fail later, and differently.
  const commands = (file: string) => [
    ['config', 'validate', file],
    ['sweep', 'start', file, '--address', '127.0.0.1:1'],
    ['schedule', 'create', file, '--every', '1d', '--address', '127.0.0.1:1'],
    ['explain', 'any.png', '--config', file],
  ];
  const expectations: [string, RegExp][] = [
    ['backbone', /configurations\[0\]\.backbone\.name: unknown backbone 'resnet-9000'.*nsfwjs-mobilenet-v2/],
    ['field', /configurations\[0\]\.heads\.baseline: .*'epoch'/],
  ];
  for (const [variant, message] of expectations) {
    test(`${variant}`, async () => {
      const outcomes = await Promise.all(commands(files[variant]!).map((args) => cli(args)));
      for (const [i, outcome] of outcomes.entries()) {
        const command = commands(files[variant]!)[i]!.slice(0, 2).join(' ');
        assert.equal(outcome.code, 2, `${command}: ${outcome.stderr}`);
        assert.match(outcome.stderr, message, command);
        assert.doesNotMatch(
          outcome.stderr,
          /connect|at Object| {4}at /,
          `${command} stopped before connecting`,
        );
        assert.equal(outcome.stdout, '', command);
      }
    });
  }
});

test('redact hides the secrets this process was given', () => {
  const argv = process.argv;
  const previous = process.env['AWS_SECRET_ACCESS_KEY'];
  process.argv = [...argv, '--api-key', 'key-from-flag-123'];
  process.env['AWS_SECRET_ACCESS_KEY'] = 'aws-secret-456';
  try {
    assert.equal(
      redact('bearer key-from-flag-123 and aws-secret-456 and aws-secret-456'),
      'bearer *** and *** and ***',
    );
    assert.equal(redact('nothing secret'), 'nothing secret');
  } finally {
    process.argv = argv;
    if (previous === undefined) delete process.env['AWS_SECRET_ACCESS_KEY'];
    else process.env['AWS_SECRET_ACCESS_KEY'] = previous;
  }
});

describe('against a Temporal dev server', () => {
  let server: LocalTemporal;
  let client: Client;
  let stateDir: string;
  let env: Record<string, string>;

  before(async () => {
    stateDir = await mkdtemp(path.join(os.tmpdir(), 'infodisent-cli-temporal-'));
    server = await startLocalTemporal({ stateDir, persistent: false });
    client = server.environment.client;
    env = { TEMPORAL_ADDRESS: server.address };
  });
  after(async () => {
    await server?.stop();
    await rm(stateDir, { recursive: true, force: true });
  });

  interface ScheduleEntry {
    scheduleId: string;
    sweep: string;
    every: string | null;
    cron: string | null;
    paused: boolean;
    note: string | null;
    recentActions: { workflowId: string }[];
  }
  const schedules = async () =>
    json<{ schedules: ScheduleEntry[] }>(await cli(['schedule', 'list', '--json'], env));
  /** Schedule listing goes through visibility, which lags a little behind changes. */
  async function eventually<T>(read: () => Promise<T>, ok: (value: T) => boolean): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const value = await read();
      if (ok(value) || attempt === 20) return value;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }

  test('schedule create, list, pause, unpause, trigger and delete', async () => {
    const created = await Promise.all([
      cli(['schedule', 'create', SMOKE, '--every', '1d', '--json'], env),
      cli(['schedule', 'create', SMOKE, '--cron', '0 3 * * MON', '--id', 'weekly', '--paused'], env),
      cli(['schedule', 'create', SMOKE, '--cron', 'not a cron', '--id', 'broken'], env),
      cli(['schedule', 'create', SMOKE, '--every', 'soon', '--id', 'broken'], env),
    ]);
    const daily = json<{ scheduleId: string; nextActionTimes: string[] }>(created[0]!);
    assert.equal(daily.scheduleId, 'reevaluate-smoke');
    assert.equal(Date.parse(daily.nextActionTimes[1]!) - Date.parse(daily.nextActionTimes[0]!), 86_400_000);
    assert.equal(created[1]!.code, 0, created[1]!.stderr);
    assert.match(created[1]!.stdout, /created schedule 'weekly'.*\(paused\)/);
    assert.equal(created[2]!.code, 2);
    assert.match(created[2]!.stderr, /--cron 'not a cron'/);
    assert.equal(created[3]!.code, 2);
    assert.match(created[3]!.stderr, /--every 'soon' is not a duration/);

    let listed = await eventually(schedules, ({ schedules }) => schedules.length === 2);
    const byId = (id: string) => listed.schedules.find((s) => s.scheduleId === id);
    assert.deepEqual(
      [byId('reevaluate-smoke'), byId('weekly')].map((s) => s && [s.sweep, s.every, s.cron, s.paused]),
      [
        ['smoke', '1d', null, false],
        ['smoke', null, '0 3 * * MON', true],
      ],
    );
    const again = await cli(['schedule', 'create', SMOKE, '--every', '1h'], env);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /schedule 'reevaluate-smoke' already exists/);

    assert.equal(
      (await cli(['schedule', 'pause', 'reevaluate-smoke', '--note', 'new weights'], env)).code,
      0,
    );
    assert.equal((await cli(['schedule', 'unpause', 'weekly'], env)).code, 0);
    assert.equal((await cli(['schedule', 'trigger', 'weekly'], env)).code, 0);
    listed = await eventually(
      schedules,
      ({ schedules }) =>
        schedules.find((s) => s.scheduleId === 'reevaluate-smoke')?.paused === true &&
        (schedules.find((s) => s.scheduleId === 'weekly')?.recentActions.length ?? 0) > 0,
    );
    assert.equal(byId('reevaluate-smoke')?.note, 'new weights');
    assert.equal(byId('weekly')?.paused, false);
    const triggered = byId('weekly')?.recentActions[0]?.workflowId ?? '';
    assert.match(triggered, /^sweep-smoke-/);

    // The triggered run is a sweep (no worker runs it here), with the schedule's validated input.
    const { sweeps } = json<{ sweeps: { workflowId: string; status: string; sweep: string }[] }>(
      await cli(['sweep', 'list', '--json'], env),
    );
    const run = sweeps.find((s) => s.workflowId === triggered);
    assert.equal(run?.status, 'RUNNING');
    assert.equal(run?.sweep, 'smoke');
    await client.workflow.getHandle(triggered).terminate('test over');

    const deleted = await Promise.all(
      ['reevaluate-smoke', 'weekly'].map((id) => cli(['schedule', 'delete', id], env)),
    );
    assert.deepEqual(
      deleted.map((d) => d.code),
      [0, 0],
    );
    const missing = await cli(['schedule', 'delete', 'weekly'], env);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no schedule 'weekly' in namespace 'default'/);
    listed = await eventually(schedules, ({ schedules }) => schedules.length === 0);
    assert.deepEqual(listed.schedules, []);
  });

  test('sweep start, status, cancel, resume and list', async () => {
    const workflowId = 'cli-test-sweep';
    const started = json<{ workflowId: string; runId: string; configurations: number }>(
      await cli(['sweep', 'start', SMOKE, '--id', workflowId, '--parallelism', '3', '--json'], env),
    );
    assert.equal(started.workflowId, workflowId);
    assert.equal(started.configurations, 1);
    const twice = await cli(['sweep', 'start', SMOKE, '--id', workflowId], env);
    assert.equal(twice.code, 1);
    assert.match(twice.stderr, /'cli-test-sweep' is already running/);

    // No worker serves the queue, so the status names the workflow's state and why progress is missing.
    const status = json<{ status: string; configurations: unknown; progressError: string }>(
      await cli(['sweep', 'status', workflowId, '--json'], env),
    );
    assert.equal(status.status, 'RUNNING');
    assert.equal(status.configurations, null);
    assert.match(status.progressError, /task queue 'infodisent-cpu'/);

    const resumeRunning = await cli(['sweep', 'resume', workflowId], env);
    assert.match(resumeRunning.stdout, /is running .*nothing to resume/);

    assert.equal((await cli(['sweep', 'cancel', workflowId], env)).code, 0);
    const { events } = await client.workflow.getHandle(workflowId).fetchHistory();
    assert.ok(
      events?.some(
        (e) => e.eventType === temporal.api.enums.v1.EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
      ),
      'the cancellation is recorded',
    );

    await client.workflow.getHandle(workflowId).terminate('simulated crash');
    const resumed = json<{ resumed: boolean; previousRunId: string; previousStatus: string; runId: string }>(
      await cli(['sweep', 'resume', workflowId, '--json'], env),
    );
    assert.deepEqual(
      { ...resumed, runId: '' },
      { workflowId, resumed: true, previousRunId: started.runId, previousStatus: 'TERMINATED', runId: '' },
    );
    assert.notEqual(resumed.runId, started.runId);
    const inputOf = async (runId: string) => {
      const { events } = await client.workflow.getHandle(workflowId, runId).fetchHistory();
      const attributes = events![0]!.workflowExecutionStartedEventAttributes!;
      return {
        taskQueue: attributes.taskQueue?.name,
        input: defaultPayloadConverter.fromPayload(attributes.input!.payloads![0]!),
      };
    };
    assert.deepEqual(await inputOf(resumed.runId), await inputOf(started.runId));

    const { sweeps } = json<{ sweeps: { workflowId: string; runId: string; status: string }[] }>(
      await eventually(
        () => cli(['sweep', 'list', '--json'], env),
        (outcome) => outcome.stdout.includes(resumed.runId),
      ),
    );
    assert.deepEqual(
      sweeps.filter((s) => s.workflowId === workflowId).map((s) => [s.runId, s.status]),
      [
        [resumed.runId, 'RUNNING'],
        [started.runId, 'TERMINATED'],
      ],
    );
    const { sweeps: terminated } = json<{ sweeps: { runId: string }[] }>(
      await cli(['sweep', 'list', '--status', 'terminated', '--json'], env),
    );
    assert.ok(terminated.some((s) => s.runId === started.runId));
    assert.ok(!terminated.some((s) => s.runId === resumed.runId));
    await client.workflow.getHandle(workflowId).terminate('test over');
  });

  test('worker serves its queue with the chosen backend and stops on SIGTERM', async () => {
    const store = await mkdtemp(path.join(os.tmpdir(), 'infodisent-cli-store-'));
    const args = ['worker', '--queues', 'gpu', '--backend', 'cpu', '--gpu-queue', 'cli-test-gpu'];
    const child: ChildProcess = spawn(process.execPath, [CLI, ...args, '--store', store], {
      cwd: ROOT,
      env: cleanEnv(env),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      await new Promise<void>((resolve, reject) => {
        child.stderr!.on('data', (chunk: Buffer) => {
          stderr += chunk.toString();
          if (stderr.includes('serving')) resolve();
        });
        void exited.then(() => reject(new Error(`the worker exited early:\n${stderr}`)));
      });
      assert.match(stderr, /^tfjs backend: cpu$/m);
      assert.match(stderr, /serving gpu queue 'cli-test-gpu' of 127\.0\.0\.1:\d+ \(namespace default\)/);
      const pollers = await eventually(
        async () =>
          (
            await client.workflowService.describeTaskQueue({
              namespace: 'default',
              taskQueue: { name: 'cli-test-gpu' },
              taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
            })
          ).pollers ?? [],
        (found) => found.length > 0,
      );
      assert.equal(pollers.length, 1, 'the worker polls the GPU activity queue');
      child.kill('SIGTERM');
      assert.equal(await exited, 0, stderr);
      assert.match(stderr, /SIGTERM: shutting down[\s\S]*worker stopped/);
    } finally {
      child.kill('SIGKILL');
      await rm(store, { recursive: true, force: true });
    }
  });
});

test('a worker given wrong S3 credentials stops at startup with a clear error and no secret', async () => {
  const { server, dispose } = await startTestSeaweedFs();
  try {
    const wrongSecret = 'wrong-secret-for-the-cli-test-0123456789';
    const outcome = await cli(
      ['worker', '--queues', 'gpu', '--store', 's3://artifacts/runs', '--s3-endpoint', server.endpoint],
      {
        AWS_ACCESS_KEY_ID: server.accessKeyId,
        AWS_SECRET_ACCESS_KEY: wrongSecret,
        AWS_REGION: server.region,
      },
    );
    assert.equal(outcome.code, 1);
    assert.match(
      outcome.stderr,
      new RegExp(
        `^error: cannot use the store s3://artifacts/runs: S3 credentials \\(access key ID ${server.accessKeyId}\\) ` +
          `were rejected by ${server.endpoint.replace(/\./g, '\\.')} for bucket 'artifacts'`,
        'm',
      ),
    );
    assert.ok(!outcome.stderr.includes(wrongSecret) && !outcome.stderr.includes(server.secretAccessKey));
    assert.doesNotMatch(outcome.stderr, /tfjs backend|serving/, 'it stopped before starting anything');
  } finally {
    await dispose();
  }
});
