import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import sharp from 'sharp';
import { closedViews, statusCounts, tally, workerNotes } from '../client/commands/sweep';
import { connectionFailure } from '../client/connection';
import { redact } from '../client/output';
import {
  type ConfigurationView,
  progressLogLine,
  StageClock,
  unansweredProgress,
} from '../client/progress-view';
import { livePollers, queuePollers } from '../client/queue-workers';
import { activityNote, type StageActivity } from '../client/stage-activity';
import { loadSweepFile } from '../core/config/experiment';
import { adapterCheck } from '../core/diagnostics/checks';
import type { ConfigurationOutcome } from '../core/pipeline/results';
import { writeSweepResults } from '../core/pipeline/results';
import { reportStage } from '../core/pipeline/stages';
import { type ConfigurationSummary, sweepAnnotations } from '../core/report/summary';
import { putJson } from '../core/store/artifact-store';
import { LocalArtifactStore } from '../core/store/local-store';
import { S3ArtifactStore } from '../core/store/s3-store';
import { roughDuration } from '../core/util/duration';
import { freePort, type LocalTemporal, startLocalTemporal } from '../infra/dev-server';
import { repoRoot } from '../infra/paths';
import { resolveTool } from '../infra/tools';
import { DEFAULT_TASK_QUEUES } from '../workflows/progress';
import {
  runCli as cli,
  cliStderrUntil,
  type CliOutcome as Outcome,
  startWorker,
  type WorkerProcess,
} from './support/cli';
import { parseCsv } from './support/csv';
import { PRUNE_FIXTURE, writePruneFixture } from './support/prune-fixture';
import { buildSampleReport } from './support/report-fixture';
import { startTestSeaweedFs } from './support/seaweedfs';

const ROOT = repoRoot();
const SMOKE = path.join(ROOT, 'experiments', 'smoke.json');

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
  run: ['--home', '--parallelism', '--ui', '--only', '--notify-url'],
  plan: ['--only', '--json', '--store', '--s3-endpoint', '--data-dir'],
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
  'config schema': [],
  'config new': [
    '--dataset',
    '--backbone',
    '--name',
    '--test-fraction',
    '--preset',
    '--heads',
    '--out',
    '--force',
  ],
  'sweep start': [
    '--id',
    '--parallelism',
    '--heartbeat-timeout',
    '--only',
    '--wait',
    '--json',
    ...QUEUES,
    ...CONNECTION,
  ],
  'sweep status': ['--follow', '--json', ...CONNECTION],
  'sweep resume': ['--parallelism', '--wait', '--json', ...CONNECTION],
  'sweep cancel': CONNECTION,
  'sweep list': ['--limit', '--status', '--json', ...CONNECTION],
  'schedule create': [
    '--every',
    '--cron',
    '--id',
    '--parallelism',
    '--heartbeat-timeout',
    '--paused',
    '--note',
    '--only',
    '--json',
    ...QUEUES,
    ...CONNECTION,
  ],
  'schedule list': ['--json', ...CONNECTION],
  'schedule pause': ['--note', ...CONNECTION],
  'schedule unpause': ['--note', ...CONNECTION],
  'schedule delete': CONNECTION,
  'schedule trigger': CONNECTION,
  export: ['--out', '--sweep', '--format', '--figures', '--html', '--json', '--store', '--s3-endpoint'],
  compare: ['--out', '--format', '--json', '--store', '--s3-endpoint'],
  'store ls': ['--json', '--store', '--s3-endpoint'],
  'store forget': ['--yes', '--json', '--store', '--s3-endpoint'],
  'store history': ['--last', '--json', '--store', '--s3-endpoint'],
  'store prune': ['--yes', '--incomplete', '--offline', '--json', '--store', '--s3-endpoint', ...CONNECTION],
  doctor: ['--backend', '--skip', '--json', ...QUEUES, ...CONNECTION, '--store', '--s3-endpoint'],
  worker: [
    '--queues',
    '--backend',
    '--gpu-concurrency',
    '--cpu-concurrency',
    '--notify-url',
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

test("a connection's failure is said in words, not the native client's error types", () => {
  const native = (inner: string) => new Error(`tonic::transport::Error(Transport, ConnectError(${inner}))`);
  assert.equal(
    connectionFailure(
      native(
        'ConnectError("tcp connect error", 127.0.0.1:7233, Os { code: 111, kind: ConnectionRefused, message: "Connection refused" })',
      ),
    ),
    'connection refused (nothing listens at that port)',
  );
  assert.equal(
    connectionFailure(
      native(
        'ConnectError("dns error", Custom { kind: Uncategorized, error: "failed to lookup address information: Name or service not known" })',
      ),
    ),
    'the host name does not resolve',
  );
  // Node's own, from the probe that spares the client's 10 s of retries.
  assert.equal(
    connectionFailure(new Error('connect ECONNREFUSED 127.0.0.1:7233')),
    'connection refused (nothing listens at that port)',
  );
  assert.equal(
    connectionFailure(new Error('getaddrinfo ENOTFOUND temporal.invalid')),
    'the host name does not resolve',
  );
  assert.equal(
    connectionFailure(new Error('Failed to connect before the deadline')),
    'Failed to connect before the deadline',
  );
});

test('--version prints the version in package.json', async () => {
  const { code, stdout } = await cli(['--version']);
  assert.equal(code, 0);
  const { version } = JSON.parse(readFileSync(path.join(repoRoot(), 'package.json'), 'utf8')) as {
    version: string;
  };
  assert.equal(stdout.trim(), version);
});

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

test("progress shows a stage's rate and time left once it has moved for a few seconds", () => {
  const clock = new StageClock();
  const view = (stage: string, done: number, total = 1000) => ({
    name: 'c',
    status: 'running',
    stage,
    done,
    total,
    detail: '',
  });
  assert.equal(clock.describe(view('extract train', 0), 0), '');
  assert.equal(clock.describe(view('extract train', 100), 2000), '', 'too early to tell');
  // 400 images in 4 s: 100/s, 600 to go.
  assert.equal(clock.describe(view('extract train', 400), 4000), ' · 100/s · 6s left');
  // A new stage starts its own clock: 20 steps in 10 s, 25 to go.
  assert.equal(clock.describe(view('train baseline', 5, 50), 5000), '');
  assert.equal(clock.describe(view('train baseline', 25, 50), 15000), ' · 2.0/s · 13s left');
  assert.equal(clock.describe(view('train baseline', 50, 50), 20000), '', 'nothing left to wait for');
  assert.deepEqual([59.4, 90, 3 * 3600 + 5 * 60, 7199].map(roughDuration), ['59s', '2m', '3h05m', '2h00m']);
});

test('a log line says the stage, its share done, and which stage of how many', () => {
  const running = {
    name: 'cub-resnet50',
    status: 'running',
    stage: 'extract train',
    done: 1,
    total: 8,
    detail: '',
    stages: { done: 1, total: 8 },
  };
  // Before the stage's first heartbeat: no share yet, and no percentage of stages to mistake for one.
  assert.deepEqual(progressLogLine(running), {
    line: 'cub-resnet50: extract train · stage 2 of 8',
    key: 'extract train',
  });
  const extracting = { ...running, heartbeat: { stage: 'extract train', done: 2048, total: 5994 } };
  assert.deepEqual(progressLogLine(extracting, ' · 120/s · 33s left'), {
    line: 'cub-resnet50: extract train 30% (2048/5994) · stage 2 of 8 · 120/s · 33s left',
    key: 'extract train 3',
  });
  const training = {
    ...running,
    stage: 'train infodisent',
    stages: { done: 4, total: 8 },
    detail: 'loss 0.412',
    heartbeat: { stage: 'train infodisent', done: 400, total: 400, detail: 'loss 0.412' },
  };
  assert.equal(
    progressLogLine(training).line,
    'cub-resnet50: train infodisent 100% (400/400) · stage 5 of 8 · loss 0.412',
  );
  assert.equal(
    progressLogLine({ ...running, stage: 'finishing', stages: { done: 8, total: 8 } }).line,
    'cub-resnet50: finishing · all 8 stages done',
  );
  assert.deepEqual(progressLogLine({ ...running, status: 'done', stages: undefined, detail: '' }), {
    line: 'cub-resnet50: done',
    key: 'done',
  });
  assert.equal(
    progressLogLine({
      ...running,
      status: 'failed',
      stages: undefined,
      detail: 'cub/images.txt: line 3: no file',
    }).line,
    'cub-resnet50: failed · cub/images.txt: line 3: no file',
  );
});

test("a stage's activity in trouble is said in words: a silent worker, a retry, a queue nobody serves", () => {
  const running: StageActivity = {
    state: 'running',
    taskQueue: 'infodisent-gpu',
    attempt: 1,
    maximumAttempts: 5,
    worker: '4242@gpu-7',
    silentSeconds: 4,
  };
  assert.equal(activityNote(running), '', 'a heartbeat seconds ago is the normal case');
  assert.equal(activityNote({ ...running, silentSeconds: 75 }), 'no heartbeat from 4242@gpu-7 for 1m');
  const waiting: StageActivity = {
    state: 'waiting',
    taskQueue: 'infodisent-gpu',
    attempt: 1,
    maximumAttempts: 5,
    waitingSeconds: 3,
    lastPollSeconds: 20,
  };
  assert.equal(activityNote(waiting), '', 'a moment between stages');
  assert.equal(activityNote({ ...waiting, waitingSeconds: 40 }), "waits for a worker on 'infodisent-gpu'");
  assert.equal(
    activityNote({ ...waiting, waitingSeconds: 40, lastPollSeconds: null }),
    "waits for a worker on 'infodisent-gpu': no worker polls it",
  );
  assert.equal(
    activityNote({ ...waiting, waitingSeconds: 400, lastPollSeconds: 200 }),
    "waits for a worker on 'infodisent-gpu': no worker polled it for 3m",
  );
  const retry: StageActivity = {
    ...waiting,
    attempt: 2,
    worker: '4242@gpu-7',
    lastFailure: 'its worker sent no heartbeat for 2m',
  };
  assert.equal(
    activityNote({ ...retry, waitingSeconds: -5 }),
    'attempt 2 of 5 starts in 5s (attempt 1: its worker sent no heartbeat for 2m, on 4242@gpu-7)',
  );
  assert.equal(
    activityNote(retry),
    "attempt 2 of 5 waits for a worker on 'infodisent-gpu' (attempt 1: its worker sent no heartbeat for 2m, on 4242@gpu-7)",
  );

  // Log lines: trouble is news once, not every second it lasts; a retry's rate is its own.
  const view = {
    name: 'cub-resnet50',
    status: 'running',
    stage: 'train infodisent',
    done: 12,
    total: 60,
    detail: 'loss 2.7',
    stages: { done: 5, total: 8 },
    heartbeat: { stage: 'train infodisent', done: 12, total: 60, detail: 'loss 2.7' },
  };
  const lost = { ...view, activity: { ...retry, waitingSeconds: 30 } };
  assert.equal(
    progressLogLine(lost).line,
    `cub-resnet50: train infodisent 20% (12/60) · stage 6 of 8 · loss 2.7 · ${activityNote(lost.activity)}`,
  );
  assert.notEqual(progressLogLine(lost).key, progressLogLine(view).key);
  assert.equal(
    progressLogLine({ ...lost, activity: { ...lost.activity, waitingSeconds: 90 } }).key,
    progressLogLine(lost).key,
  );
  const clock = new StageClock();
  assert.equal(clock.describe({ ...view, activity: running }, 0), '');
  assert.equal(clock.describe({ ...view, done: 20, activity: running }, 10_000), ' · 0.8/s · 50s left');
  assert.equal(clock.describe({ ...lost, done: 20 }, 60_000), '', 'no rate while it waits');
  const resumed = { ...view, done: 20, activity: { ...running, attempt: 2 } };
  assert.equal(clock.describe(resumed, 70_000), '', 'the new attempt starts its own clock');
  assert.equal(clock.describe({ ...resumed, done: 30 }, 80_000), ' · 1.0/s · 30s left');
});

test('sweep start says when the workers polling its queues leave it waiting, or idle beyond --parallelism', async () => {
  const sweep = await loadSweepFile(path.join(ROOT, 'experiments', 'paper.json'));
  const input = { sweep, queues: DEFAULT_TASK_QUEUES, parallelism: 2 };
  assert.deepEqual(workerNotes(input, { cpu: 1, gpu: 2 }), []);
  assert.deepEqual(workerNotes(input, { cpu: 2, gpu: 8 }), [
    "8 workers poll 'infodisent-gpu', and --parallelism 2 runs 2 configurations at once, each with one GPU stage at a time: --parallelism 8 would keep 8 of them busy",
  ]);
  const two = { ...input, sweep: { ...sweep, configurations: sweep.configurations.slice(0, 2) } };
  assert.deepEqual(workerNotes(two, { cpu: 1, gpu: 8 }), [], 'two configurations keep at most two busy');
  assert.equal(workerNotes(input, { cpu: 0, gpu: 0 }).length, 2);
});

test('a worker Temporal still lists but that has not polled for 90 s counts as gone', async () => {
  const pollers = [
    { identity: 'busy@a', secondsAgo: 30 },
    { identity: 'gone@b', secondsAgo: 240 },
  ];
  assert.deepEqual(livePollers(pollers), [pollers[0]]);
  // The progress query's failure names no dead worker: with only stale pollers, the queue has no worker.
  const now = Date.now() / 1000;
  const client = {
    options: { namespace: 'default' },
    workflowService: {
      describeTaskQueue: async () => ({
        pollers: [
          { identity: 'gone@b', lastAccessTime: { seconds: now - 300 } },
          { identity: 'gone@c', lastAccessTime: { seconds: now - 200 } },
        ],
      }),
    },
  } as unknown as Client;
  const deadline = Object.assign(new Error('Deadline exceeded after 4.999s'), { cause: { details: 'x' } });
  assert.equal(
    await unansweredProgress(client, 'infodisent-cpu', deadline),
    "no progress: no worker polls task queue 'infodisent-cpu', where the sweep's workflows run " +
      '(start one: infodisent worker --queues cpu)',
  );
});

test("a closed sweep's unfinished configurations read as it ended, not running, and so do its counts", () => {
  const view = (name: string, status: string): ConfigurationView => ({
    name,
    status,
    stage: status === 'running' ? 'extract train' : status,
    done: 0,
    total: 1,
    detail: '',
  });
  const views = [view('a', 'done'), view('b', 'running'), view('c', 'pending'), view('d', 'failed')];
  assert.equal(statusCounts(views), '1 of 4 configurations done, 1 running, 1 pending, 1 failed');
  assert.deepEqual(closedViews('RUNNING', views), views);
  const terminated = closedViews('TERMINATED', views);
  assert.deepEqual(
    terminated.map((v) => [v.status, v.stage]),
    [
      ['done', 'done'],
      ['terminated', 'extract train'],
      ['not started', 'pending'],
      ['failed', 'failed'],
    ],
  );
  assert.equal(statusCounts(terminated), '1 of 4 configurations done, 1 failed, 1 terminated, 1 not started');
  assert.equal(
    statusCounts(closedViews('CANCELLED', [view('a', 'cancelled'), view('b', 'pending')])),
    '0 of 2 configurations done, 2 cancelled',
  );
  assert.equal(tally({ configurations: 3, done: 0, failed: 0 }), '0/3 done');
  assert.equal(
    tally({ configurations: 3, done: 1, failed: 1, cancelled: 1 }),
    '1/3 done, 1 failed, 1 cancelled',
  );
  assert.equal(tally({ configurations: 3, done: null, failed: null }), '', 'a sweep from before the counts');
});

test('redact hides the secrets this process was given', () => {
  const argv = process.argv;
  const previous = process.env['AWS_SECRET_ACCESS_KEY'];
  process.argv = [...argv, '--api-key', 'key-from-flag-123', '--notify-url=https://hooks.example/T0/B1/tok'];
  process.env['AWS_SECRET_ACCESS_KEY'] = 'aws-secret-456';
  try {
    assert.equal(
      redact('bearer key-from-flag-123 and aws-secret-456 and aws-secret-456'),
      'bearer *** and *** and ***',
    );
    assert.equal(redact('posting to https://hooks.example/T0/B1/tok'), 'posting to ***');
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
    client = server.client;
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
  async function eventually<T>(read: () => Promise<T>, ok: (value: T) => boolean, attempts = 20): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const value = await read();
      if (ok(value) || attempt === attempts) return value;
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
    const startOutcome = await cli(
      ['sweep', 'start', SMOKE, '--id', workflowId, '--parallelism', '3', '--json'],
      env,
    );
    const started = json<{ workflowId: string; runId: string; configurations: number }>(startOutcome);
    // No worker serves either queue: the sweep waits, and says so at once.
    assert.equal(
      startOutcome.stderr,
      "note: no worker polls 'infodisent-cpu' yet, where the sweep's workflows run: it waits for one (infodisent worker --queues cpu)\n" +
        "note: no worker polls 'infodisent-gpu' yet: extraction and training wait for one (infodisent worker --queues gpu)\n",
    );
    assert.equal(started.workflowId, workflowId);
    assert.equal(started.configurations, 1);
    const twice = await cli(['sweep', 'start', SMOKE, '--id', workflowId], env);
    assert.equal(twice.code, 1);
    assert.match(twice.stderr, /'cli-test-sweep' is already running/);

    // No worker serves the queue, so the status names the workflow's state and why progress is missing;
    // following it says so too, once it has waited a while.
    const following = cliStderrUntil(['sweep', 'status', workflowId, '--follow'], env, /\n/, 30_000);
    const status = json<{ status: string; configurations: unknown; progressError: string }>(
      await cli(['sweep', 'status', workflowId, '--json'], env),
    );
    assert.equal(status.status, 'RUNNING');
    assert.equal(status.configurations, null);
    const why =
      "no progress: no worker polls task queue 'infodisent-cpu', where the sweep's workflows run " +
      '(start one: infodisent worker --queues cpu)';
    assert.equal(status.progressError, why);
    assert.equal(await following, `${why}\n`, 'said after ten seconds without an answer');

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

  test('sweep start --only runs the configurations it names, by name or glob', async () => {
    const paper = path.join(ROOT, 'experiments', 'paper.json');
    const workflowId = 'cli-test-only';
    const started = json<{ configurations: number }>(
      await cli(
        ['sweep', 'start', paper, '--only', 'cub-*, imagenet-vit-b16', '--id', workflowId, '--json'],
        env,
      ),
    );
    assert.equal(started.configurations, 5);
    const { events } = await client.workflow.getHandle(workflowId).fetchHistory();
    const input = defaultPayloadConverter.fromPayload(
      events![0]!.workflowExecutionStartedEventAttributes!.input!.payloads![0]!,
    ) as { sweep: { configurations: { name: string }[] } };
    assert.deepEqual(
      input.sweep.configurations.map((c) => c.name),
      ['cub-convnext-tiny', 'cub-densenet121', 'cub-resnet34', 'cub-resnet50', 'imagenet-vit-b16'],
    );
    await client.workflow.getHandle(workflowId).terminate('test over');
    // A pattern that selects nothing stops before Temporal, naming it and what there is.
    const none = await cli(['sweep', 'start', paper, '--only', 'cub-*,coco-*', '--id', 'never'], env);
    assert.equal(none.code, 2);
    assert.match(
      none.stderr,
      /--only: no configuration of .*paper\.json matches 'coco-\*' \(it has 'cub-convnext-tiny', /,
    );
  });

  test('worker serves its queue with the chosen backend and stops on SIGTERM', async () => {
    const store = await mkdtemp(path.join(os.tmpdir(), 'infodisent-cli-store-'));
    const worker = await startWorker(
      ['--queues', 'gpu', '--backend', 'cpu', '--gpu-queue', 'cli-test-gpu', '--store', store],
      env,
    );
    const { child, exited } = worker;
    try {
      const stderr = worker.stderr();
      assert.match(stderr, /^tfjs backend: cpu$/m);
      assert.match(
        stderr,
        /serving gpu queue 'cli-test-gpu' of 127\.0\.0\.1:\d+ \(namespace default\) as (\d+@\S+);/,
      );
      assert.equal(/ as (\d+@\S+);/.exec(stderr)?.[1], worker.identity, 'the identity Temporal knows it by');
      const pollers = await eventually(
        () => queuePollers(client, 'cli-test-gpu'),
        (found) => found.length > 0,
      );
      assert.deepEqual(
        pollers.map((poller) => poller.identity),
        [worker.identity],
        'the worker polls the GPU activity queue',
      );
      const doctor = json<{ checks: DoctorCheck[] }>(
        await cli(
          [
            ...['doctor', '--json', '--skip', 'tfjs,onnx,images', '--store', store],
            ...['--gpu-queue', 'cli-test-gpu', '--cpu-queue', 'cli-test-cpu-unserved'],
          ],
          env,
        ),
      );
      const checks = new Map(doctor.checks.map((check) => [check.name, check]));
      assert.deepEqual([...checks.keys()], ['machine', 'store', 'temporal', 'gpu queue', 'cpu queue']);
      assert.equal(checks.get('store')?.status, 'ok');
      assert.match(
        checks.get('temporal')!.summary,
        /^127\.0\.0\.1:\d+, server \d+\.\d+\.\d+, namespace 'default'$/,
      );
      assert.equal(checks.get('gpu queue')?.status, 'ok');
      assert.match(checks.get('gpu queue')!.summary, /^'cli-test-gpu': 1 worker \(\d+@/);
      assert.equal(checks.get('cpu queue')?.status, 'warn');
      assert.match(checks.get('cpu queue')!.summary, /no worker polled 'cli-test-cpu-unserved'/);
      child.kill('SIGTERM');
      assert.equal(await exited, 0, worker.stderr());
      assert.match(worker.stderr(), /SIGTERM: shutting down[\s\S]*worker stopped/);
    } finally {
      child.kill('SIGKILL');
      await rm(store, { recursive: true, force: true });
    }
  });

  test('a sweep whose GPU worker is lost says so: waiting on a queue nobody serves, the retry and why', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'infodisent-cli-lost-'));
    const queues = ['--gpu-queue', 'lost-gpu', '--cpu-queue', 'lost-cpu'];
    const shared = [...queues, '--store', path.join(dir, 'store'), '--data-dir', path.join(dir, 'data')];
    const workflowId = 'cli-test-lost-worker';
    const cpu = await startWorker(['--queues', 'cpu', '--backend', 'wasm', ...shared], env);
    let gpu: WorkerProcess | undefined;
    type Status = {
      configurations: { detail: string; activity?: StageActivity; heartbeat?: unknown }[] | null;
    };
    const status = async () => {
      const { configurations } = json<Status>(await cli(['sweep', 'status', workflowId, '--json'], env));
      return configurations?.[0];
    };
    try {
      json(
        await cli(
          ['sweep', 'start', SMOKE, '--id', workflowId, '--heartbeat-timeout', '5s', ...queues, '--json'],
          env,
        ),
      );
      // No GPU worker yet: the first GPU stage waits on a queue nobody has polled, and after a few seconds says so.
      const unserved = await eventually(status, (view) => (view?.activity?.waitingSeconds ?? 0) > 12, 120);
      assert.equal(unserved?.activity?.state, 'waiting');
      assert.equal(unserved?.activity?.lastPollSeconds, null);
      const unservedText = (await cli(['sweep', 'status', workflowId], env)).stdout;
      assert.match(
        unservedText,
        / extract train +stage 2 of 8 · waits for a worker on 'lost-gpu': no worker polls it\n/,
      );
      assert.match(unservedText, /^0 of 1 configuration done, 1 running$/m);

      gpu = await startWorker(['--queues', 'gpu', '--backend', 'wasm', ...shared], env);
      const training = await eventually(
        status,
        (view) =>
          view?.activity?.state === 'running' && /train baseline/.test(JSON.stringify(view.heartbeat)),
      );
      assert.equal(training?.activity?.worker, gpu.identity);
      gpu.child.kill('SIGKILL');
      await gpu.exited;
      // Each worker's log has a line as each of its stages starts and ends.
      const configurationId = `${workflowId}/parts-mobilenetv2`;
      const logged = (worker: WorkerProcess, stage: string) =>
        worker
          .stderr()
          .split('\n')
          .filter((line) => line.includes(` ${configurationId}: ${stage} `))
          .map((line) => line.replace(/^\S+ /, '').replace(/ in \d+s /, ' in Ns '));
      assert.deepEqual(logged(cpu, 'dataset'), [
        `${configurationId}: dataset started`,
        `${configurationId}: dataset done in Ns (400/400)`,
      ]);
      assert.deepEqual(logged(gpu, 'extract train'), [
        `${configurationId}: extract train started`,
        `${configurationId}: extract train done in Ns (300/300)`,
      ]);
      assert.deepEqual(logged(gpu, 'train baseline'), [`${configurationId}: train baseline started`]);

      // Five seconds without a heartbeat: the stage is retried and waits for another worker.
      const lost = await eventually(status, (view) => view?.activity?.attempt === 2, 60);
      assert.deepEqual(
        { ...lost?.activity, waitingSeconds: 0, lastPollSeconds: 0 },
        {
          state: 'waiting',
          taskQueue: 'lost-gpu',
          attempt: 2,
          maximumAttempts: 5,
          worker: gpu.identity,
          waitingSeconds: 0,
          lastPollSeconds: 0,
          lastFailure: 'its worker sent no heartbeat for 5s',
        },
      );
      const text = (await cli(['sweep', 'status', workflowId], env)).stdout;
      assert.match(
        text,
        new RegExp(
          `attempt 2 of 5 (starts in \\d+s|waits for a worker on 'lost-gpu') \\(attempt 1: its worker sent no heartbeat for 5s, on ${gpu.identity}\\)`,
        ),
      );

      // A sweep whose configuration fails on its dataset (the CPU worker's stage) ends by saying how to go on.
      const sweep = JSON.parse(await readFile(SMOKE, 'utf8'));
      sweep.name = 'lost-data';
      sweep.configurations[0].dataset = { kind: 'class-folders', name: 'f', root: path.join(dir, 'nowhere') };
      const badFile = path.join(dir, 'lost-data.json');
      await writeFile(badFile, JSON.stringify(sweep));
      const failedRun = await cli(
        ['sweep', 'start', badFile, '--id', 'cli-test-lost-data', ...queues, '--wait'],
        env,
      );
      assert.equal(failedRun.code, 1, failedRun.stderr);
      const hint =
        '1 configuration failed: fix the cause, then `infodisent sweep start FILE` (or `infodisent sweep resume ' +
        'cli-test-lost-data` where the file is unchanged); the stages that finished are reused';
      assert.ok(failedRun.stderr.endsWith(`\n${hint}\n`), failedRun.stderr);
      assert.match(failedRun.stdout, /^no configuration completed$/m);
      const failedStatus = await cli(['sweep', 'status', 'cli-test-lost-data'], env);
      assert.ok(failedStatus.stdout.endsWith(`\n${hint}\n`), failedStatus.stdout);

      // Cancelled while its stage waits for a GPU worker: the configuration reads cancelled, not failed.
      assert.equal((await cli(['sweep', 'cancel', workflowId], env)).code, 0);
      await client.workflow
        .getHandle(workflowId)
        .result()
        .catch(() => undefined);
      const cancelledText = (await cli(['sweep', 'status', workflowId], env)).stdout;
      assert.match(cancelledText, /^cli-test-lost-worker {2}CANCELLED /m);
      assert.match(cancelledText, /^parts-mobilenetv2 +cancelled /m);
      assert.match(cancelledText, /^0 of 1 configuration done, 1 cancelled$/m);
      type Listed = { workflowId: string; status: string; done: number; failed: number; cancelled: number };
      const listedCancelled = await eventually(
        async () =>
          json<{ sweeps: Listed[] }>(await cli(['sweep', 'list', '--status', 'cancelled', '--json'], env)),
        ({ sweeps }) => sweeps.some((s) => s.workflowId === workflowId && s.cancelled === 1),
      );
      const entry = listedCancelled.sweeps.find((s) => s.workflowId === workflowId);
      assert.deepEqual(entry && [entry.status, entry.done, entry.failed, entry.cancelled], [
        'CANCELLED',
        0,
        0,
        1,
      ]);
      const canceled = json<{ sweeps: Listed[] }>(
        await cli(['sweep', 'list', '--status', 'canceled', '--json'], env),
      );
      assert.ok(
        canceled.sweeps.some((s) => s.workflowId === workflowId),
        'either spelling',
      );

      // Terminated while its stage runs (or waits): its configuration reads terminated, not running.
      const terminatedId = 'cli-test-terminated';
      json(await cli(['sweep', 'start', SMOKE, '--id', terminatedId, ...queues, '--json'], env));
      await eventually(
        async () =>
          json<Status>(await cli(['sweep', 'status', terminatedId, '--json'], env)).configurations?.[0],
        (view) => (view as { status?: string } | undefined)?.status === 'running',
      );
      await client.workflow.getHandle(terminatedId).terminate('test: cut off');
      const terminatedText = (await cli(['sweep', 'status', terminatedId], env)).stdout;
      assert.match(terminatedText, /^parts-mobilenetv2 +terminated /m);
      assert.match(terminatedText, /^0 of 1 configuration done, 1 terminated$/m);
      assert.doesNotMatch(terminatedText, /running/);
      const listedTerminated = await eventually(
        () => cli(['sweep', 'list', '--status', 'terminated'], env),
        (outcome) => outcome.stdout.includes(terminatedId),
      );
      assert.match(
        listedTerminated.stdout,
        new RegExp(`^${terminatedId} +TERMINATED +smoke +0/1 done `, 'm'),
      );
    } finally {
      await client.workflow
        .getHandle(workflowId)
        .terminate('test over')
        .catch(() => undefined);
      gpu?.child.kill('SIGKILL');
      cpu.child.kill('SIGKILL');
      await Promise.all([cpu.exited, gpu?.exited]);
      await rm(dir, { recursive: true, force: true });
    }
  });
});

interface DoctorCheck {
  name: string;
  status: 'ok' | 'warn' | 'fail' | 'skip';
  summary: string;
}

describe('doctor', () => {
  const checksOf = (outcome: Outcome) =>
    new Map((JSON.parse(outcome.stdout) as { checks: DoctorCheck[] }).checks.map((c) => [c.name, c]));

  test("checks the backend's numbers and the bundled backbone on each provider, and passes", async () => {
    const outcome = await cli(['doctor', '--json', '--skip', 'temporal,store']);
    assert.equal(outcome.code, 0, outcome.stderr);
    const checks = checksOf(outcome);
    const tfjs = checks.get('tfjs')!;
    assert.equal(tfjs.status, 'ok', tfjs.summary);
    const figures =
      /^(\w+) \(auto\): product within (\S+) of float64; 512-channel rotation orthogonal to (\S+), \d+ ms$/.exec(
        tfjs.summary,
      );
    assert.ok(figures, tfjs.summary);
    assert.notEqual(figures[1], 'webgpu', 'auto never trains on a software adapter, and CI has no other');
    assert.ok(Number(figures[2]) <= 1e-5 && Number(figures[3]) <= 1e-4, tfjs.summary);
    assert.equal(checks.get('onnx cpu')?.status, 'ok');
    assert.match(checks.get('onnx cpu')!.summary, /^bundled MobileNetV2, [\d.]+ ms\/image$/);
    // Under lavapipe (CI) WebGPU has a software adapter: both runtimes see it and auto passes it over.
    const adapter = checks.get('webgpu')!;
    const webgpu = checks.get('onnx webgpu')!;
    if (/software adapter/.test(adapter.summary)) {
      assert.equal(webgpu.status, 'warn');
      const agreement = /features within (\S+) of the CPU's; a software adapter/.exec(webgpu.summary);
      assert.ok(agreement && Number(agreement[1]) <= 1e-3, webgpu.summary);
    } else assert.equal(webgpu.status, 'skip', webgpu.summary);
    assert.equal(checks.get('extraction')?.summary, "ONNX backbones with provider 'auto' extract on cpu");
    const images = checks.get('images')!;
    assert.equal(images.status, 'ok');
    assert.match(
      images.summary,
      /^[1-9]\d* images\/s decoded and cropped for ResNet-50 \(\d+ threads?\): the most this machine can feed a backbone$/,
    );
  });

  test('on a machine with several GPUs, the adapter check warns that every worker gets the first', () => {
    const h100 = { found: true as const, description: 'NVIDIA H100 80GB HBM3', software: false };
    assert.deepEqual(adapterCheck(h100, 'webgpu', ['NVIDIA H100 80GB HBM3']), {
      name: 'webgpu',
      status: 'ok',
      summary: 'adapter NVIDIA H100 80GB HBM3',
    });
    const shared = adapterCheck(h100, 'webgpu', Array(8).fill('NVIDIA H100 80GB HBM3'));
    assert.equal(shared.status, 'warn');
    assert.match(
      shared.summary,
      /^adapter NVIDIA H100 80GB HBM3, the first of this machine's 8 GPUs, for every process: .*CUDA_VISIBLE_DEVICES.*container/,
    );
  });

  test('a failing check is named and exits 1: an unreachable Temporal, a store it cannot write, a missing backend', async () => {
    const port = await freePort();
    const outcome = await cli([
      ...['doctor', '--json', '--skip', 'onnx', '--backend', 'tensorflow'],
      ...['--address', `127.0.0.1:${port}`, '--store', '/dev/null/store'],
    ]);
    assert.equal(outcome.code, 1, outcome.stderr);
    const checks = checksOf(outcome);
    assert.match(checks.get('store')!.summary, /^file:\/\/\/dev\/null\/store: write failed: .*ENOTDIR/);
    assert.match(
      checks.get('temporal')!.summary,
      new RegExp(`cannot connect to Temporal at 127\\.0\\.0\\.1:${port}`),
    );
    assert.match(checks.get('tfjs')!.summary, /tfjs backend 'tensorflow' is not available/);
    assert.deepEqual(
      [...checks.values()].filter((c) => c.status === 'fail').map((c) => c.name),
      ['store', 'temporal', 'tfjs'],
    );
    const text = await cli(['doctor', '--skip', 'onnx,tfjs,store,images', '--address', `127.0.0.1:${port}`]);
    assert.match(text.stdout, /^fail {2}temporal {5}cannot connect/m);
    assert.match(text.stdout, /\n1 ok, 0 warnings, 1 failure\n$/);
  });
});

test('a worker forced onto webgpu says which adapter it runs on, and warns of a software one', async () => {
  const store = await mkdtemp(path.join(os.tmpdir(), 'infodisent-cli-webgpu-'));
  try {
    const port = await freePort();
    const outcome = await cli([
      ...['worker', '--queues', 'gpu', '--backend', 'webgpu'],
      ...['--store', store, '--address', `127.0.0.1:${port}`],
    ]);
    assert.equal(outcome.code, 1, 'nothing answers at the address');
    const line = /^tfjs backend: .*$/m.exec(outcome.stderr)?.[0];
    // Without any Vulkan adapter (no lavapipe either), the forced backend cannot start at all.
    if (!line) {
      assert.match(outcome.stderr, /tfjs backend 'webgpu' is not available/);
      return;
    }
    assert.match(line, /^tfjs backend: webgpu on \S/);
    if (/llvmpipe|lavapipe/i.test(line))
      assert.match(line, /: a software adapter, far slower than wasm \(infodisent doctor\)$/);
  } finally {
    await rm(store, { recursive: true, force: true });
  }
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

describe('export writes a finished sweep from the store', () => {
  let dir: string;
  let storeDir: string;
  let configurations: ConfigurationSummary[];
  const tableFiles = (formats: string[]) =>
    [
      ...['accuracy', 'rv', 'ablation', 'faithfulness'].flatMap((id) =>
        formats.filter((f) => f !== 'json').map((f) => `${id}.${f}`),
      ),
      ...(formats.includes('json') ? ['tables.json'] : []),
      // The per-class and significance tables: the sample's first configuration has its heads' classes,
      // intervals and paired comparison.
      ...['classes', 'significance'].flatMap((id) =>
        ['csv', 'json'].filter((f) => formats.includes(f)).map((f) => `${id}.${f}`),
      ),
    ].sort();
  const relative = (root: string, files: string[]) => files.map((f) => path.relative(root, f)).sort();

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'infodisent-cli-export-'));
    storeDir = path.join(dir, 'store');
    const store = new LocalArtifactStore(storeDir);
    // A sweep as the pipeline leaves it: explain summaries, results.json, then the report stage's output.
    const { report } = await buildSampleReport(dir);
    configurations = report.configurations;
    const completed: ConfigurationOutcome[] = [];
    for (const summary of configurations) {
      const summaryKey = `summaries/${summary.configuration}.json`;
      await putJson(store, summaryKey, summary);
      completed.push({
        configuration: summary.configuration,
        summaryKey,
        dataset: { name: summary.dataset, classes: summary.classes.length, train: 18, test: 9, skipped: [] },
        backbone: summary.backbone,
        features: { train: 'features/train', test: 'features/test', reused: false },
        // The export reads the summaries; per-head training records only feed results.md.
        heads: [],
        ...(summary === configurations[0]
          ? { reported: { source: 'a paper', infodisent: { top1: 83 } } }
          : {}),
      });
    }
    await writeSweepResults(store, {
      sweep: report.sweep,
      finishedAt: report.generatedAt,
      completed,
      failed: report.failed,
    });
    await reportStage(
      { store, dataDir: path.join(dir, 'datasets') },
      {
        sweep: report.sweep,
        generatedAt: report.generatedAt,
        failed: report.failed,
        annotations: sweepAnnotations(completed),
        summaryKeys: completed.map((c) => c.summaryKey),
      },
    );
    // An earlier sweep with results but no report (its report stage never ran).
    await writeSweepResults(store, {
      sweep: 'older',
      finishedAt: '2024-06-01T00:00:00.000Z',
      completed: completed.slice(1),
      failed: [],
    });
  });
  after(() => rm(dir, { recursive: true, force: true }));

  interface Exported {
    sweep: string;
    store: string;
    out: string;
    configurations: string[];
    failed: { configuration: string; error: string }[];
    files: { tables: string[]; figures: string[]; html: string[] };
  }

  test('the latest sweep by default: every table format, each parsing as its format says', async () => {
    const out = path.join(dir, 'default');
    const exported = json<Exported>(await cli(['export', '--store', storeDir, '--out', out, '--json']));
    assert.equal(exported.sweep, 'sample');
    assert.deepEqual(exported.configurations, ['parts-synthetic', 'parts-accuracy-only']);
    assert.deepEqual(exported.failed, [
      { configuration: 'broken', error: 'extraction failed: <no such file>' },
    ]);
    assert.deepEqual(
      relative(path.join(out, 'tables'), exported.files.tables),
      tableFiles(['md', 'csv', 'tex', 'json']),
    );
    assert.deepEqual([exported.files.figures, exported.files.html], [[], []]);

    // CSV: the column keys as header, one row per configuration, numbers at full precision.
    const [header, ...rows] = parseCsv(await readFile(path.join(out, 'tables', 'accuracy.csv'), 'utf8'));
    assert.deepEqual(header, [
      'configuration',
      'dataset',
      'backbone',
      'baseline_top1',
      'infodisent_top1',
      'baseline_top5',
      'infodisent_top5',
      'reported_infodisent_top1',
    ]);
    const full = configurations[0]!;
    const fullRow = rows.find((row) => row[0] === full.configuration)!;
    assert.equal(rows.length, 2);
    assert.deepEqual(
      fullRow.slice(1, 5).map((v, i) => (i < 2 ? v : Number(v))),
      [full.dataset, full.backbone, 100 * full.heads.baseline!.top1, 100 * full.heads.infodisent!.top1],
    );
    // The published figure from results.json, empty where a configuration reports none.
    assert.deepEqual(
      rows.map((row) => [row[0], row[7]]).sort(),
      configurations.map((c) => [c.configuration, c === full ? '83' : '']).sort(),
    );

    // JSON: the four tables with their columns and typed rows.
    const tables = JSON.parse(await readFile(path.join(out, 'tables', 'tables.json'), 'utf8')) as Record<
      string,
      { columns: { key: string }[]; rows: Record<string, unknown>[] }
    >;
    assert.deepEqual(Object.keys(tables), ['accuracy', 'rv', 'ablation', 'faithfulness']);
    const rv = tables['rv']!.rows.find((row) => row['configuration'] === full.configuration)!;
    assert.equal(rv['infodisent_rv'], 100 * full.heads.infodisent!.rv!.mean);
    assert.equal(tables['ablation']!.rows.length, 2);

    // LaTeX (booktabs) and Markdown.
    const latex = await readFile(path.join(out, 'tables', 'ablation.tex'), 'utf8');
    for (const command of [
      '\\begin{tabular}',
      '\\toprule',
      '\\midrule',
      '\\bottomrule',
      '\\label{tab:ablation}',
    ])
      assert.ok(latex.includes(command), `ablation.tex has ${command}`);
    assert.match(
      await readFile(path.join(out, 'tables', 'rv.md'), 'utf8'),
      /^\| Dataset \| Backbone \| InfoDisent \|/m,
    );
  });

  test('a named sweep with chosen formats, the figures and the HTML report', async () => {
    const out = path.join(dir, 'named');
    const outcome = await cli([
      'export',
      '--store',
      `file://${storeDir}`,
      '--sweep',
      'sample',
      '--format',
      'csv,tex',
      '--figures',
      '--html',
      '--out',
      out,
    ]);
    assert.equal(outcome.code, 0, outcome.stderr);
    assert.match(
      outcome.stdout,
      /^exported sweep 'sample' \(finished 2025-01-01T00:00:00Z, 2 configurations\)/,
    );
    assert.match(outcome.stdout, /FAILED broken \(no rows in the tables\): extraction failed/);
    assert.deepEqual(
      await readdir(path.join(out, 'tables')).then((f) => f.sort()),
      tableFiles(['csv', 'tex']),
    );

    // The HTML report is the report stage's folder, file for file; the figures are its SVGs and PNGs.
    const reportKeys = await new LocalArtifactStore(storeDir).list('reports/sample/');
    const html = (await readdir(path.join(out, 'html'), { recursive: true, withFileTypes: true }))
      .filter((entry) => entry.isFile())
      .map((entry) => path.relative(out, path.join(entry.parentPath, entry.name)).split(path.sep).join('/'));
    assert.deepEqual(html.sort(), reportKeys.map((key) => key.replace('reports/sample/', 'html/')).sort());
    const figures = reportKeys.filter((key) => /\.(svg|png)$/.test(key));
    assert.ok(figures.includes('reports/sample/assets/rv.svg'), 'the RV chart is a figure');
    assert.ok(figures.filter((key) => key.endsWith('.png')).length > 10, 'prototype and explanation PNGs');
    for (const key of figures) {
      const copied = await readFile(path.join(out, 'figures', key.replace('reports/sample/', '')));
      assert.ok(copied.equals((await new LocalArtifactStore(storeDir).get(key))!), `${key} copied whole`);
    }
    // Each SVG chart also as a PNG at 4x its size, for pdflatex and word processors.
    const charts = figures.filter((key) => key.endsWith('.svg'));
    assert.ok(charts.length >= 3, 'the RV, ablation and per-class charts');
    for (const key of charts) {
      const file = path.join(out, 'figures', key.replace('reports/sample/', ''));
      const svg = await readFile(file, 'utf8');
      const [width, height] = ['width', 'height'].map((a) =>
        Number(new RegExp(`<svg[^>]* ${a}="(\\d+)"`).exec(svg)![1]),
      );
      const png = await sharp(file.replace(/\.svg$/, '.png')).metadata();
      assert.deepEqual([png.format, png.width, png.height], ['png', 4 * width!, 4 * height!], key);
    }
    assert.match(await readFile(path.join(out, 'html', 'index.html'), 'utf8'), /<h1>Sweep sample<\/h1>/);
  });

  test('clear errors: an unknown sweep lists those there are, an empty store says so', async () => {
    const out = path.join(dir, 'failed');
    const [unknown, noReport, empty, format] = await Promise.all([
      cli(['export', '--store', storeDir, '--sweep', 'sweep-sample', '--out', out]),
      cli(['export', '--store', storeDir, '--sweep', 'older', '--figures', '--out', out]),
      cli(['export', '--store', path.join(dir, 'empty'), '--out', out]),
      cli(['export', '--store', storeDir, '--format', 'md,pdf', '--out', out]),
    ]);
    assert.equal(unknown!.code, 1);
    assert.match(
      unknown!.stderr,
      /no finished sweep 'sweep-sample' in file:\/\/.*; it holds 'sample', 'older'/,
    );
    assert.equal(noReport!.code, 1);
    assert.match(noReport!.stderr, /sweep 'older' has no HTML report in .*leave out --figures and --html/);
    assert.equal(empty!.code, 1);
    assert.match(empty!.stderr, /^error: no finished sweep in file:\/\/.*empty \(nothing under results\/\)/);
    assert.notEqual(format!.code, 0);
    assert.match(format!.stderr, /--format.*unknown: 'pdf'/);
    assert.equal((await readdir(dir)).includes('failed'), false, 'nothing was written');
  });

  test('from an S3 store (SeaweedFS): the same tables and figures', async () => {
    const { server, dispose } = await startTestSeaweedFs();
    try {
      const s3 = new S3ArtifactStore({
        bucket: 'exports',
        prefix: 'team/run-1',
        endpoint: server.endpoint,
        region: server.region,
        forcePathStyle: true,
        credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
      });
      await s3.createBucket();
      const local = new LocalArtifactStore(storeDir);
      for (const key of await local.list('')) await s3.put(key, (await local.get(key))!);
      const env = {
        AWS_ACCESS_KEY_ID: server.accessKeyId,
        AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
        AWS_REGION: server.region,
      };
      const [fromS3, fromDisk] = await Promise.all(
        ['s3', 'disk'].map(async (name) => {
          const out = path.join(dir, name);
          const store =
            name === 's3'
              ? ['--store', 's3://exports/team/run-1', '--s3-endpoint', server.endpoint]
              : ['--store', storeDir];
          return {
            out,
            exported: json<Exported>(
              await cli(['export', ...store, '--figures', '--out', out, '--json'], env),
            ),
          };
        }),
      );
      assert.equal(fromS3!.exported.store, 's3://exports/team/run-1');
      assert.equal(fromS3!.exported.sweep, 'sample');
      for (const kind of ['tables', 'figures'] as const) {
        const files = relative(fromS3!.out, fromS3!.exported.files[kind]);
        assert.deepEqual(files, relative(fromDisk!.out, fromDisk!.exported.files[kind]), kind);
        for (const file of files) {
          const [a, b] = await Promise.all([
            readFile(path.join(fromS3!.out, file)),
            readFile(path.join(fromDisk!.out, file)),
          ]);
          assert.ok(a.equals(b), `${file} is the same from S3`);
        }
      }
      // The store's inventory reads the same from S3 as from the folder.
      const [s3Inventory, diskInventory] = await Promise.all(
        [
          ['--store', 's3://exports/team/run-1', '--s3-endpoint', server.endpoint],
          ['--store', storeDir],
        ].map(async (store) =>
          json<{ location: string; sweeps: { sweep: string; completed: number }[] }>(
            await cli(['store', 'ls', ...store, '--json'], env),
          ),
        ),
      );
      assert.equal(s3Inventory!.location, 's3://exports/team/run-1');
      assert.deepEqual({ ...s3Inventory, location: '' }, { ...diskInventory, location: '' });
      assert.deepEqual(
        s3Inventory!.sweeps.map((s) => [s.sweep, s.completed]),
        [
          ['sample', 2],
          ['older', 1],
        ],
      );
    } finally {
      await dispose();
    }
  });
});

describe('store prune', () => {
  test("on the embedded default, asks this home's history, whatever answers at 127.0.0.1:7233", async () => {
    const home = await mkdtemp(path.join(os.tmpdir(), 'infodisent-cli-prune-home-'));
    await writePruneFixture(new LocalArtifactStore(path.join(home, 'store')));
    const env = { INFODISENT_HOME: home, TEMPORAL_CLI: resolveTool('temporal') };
    let own: LocalTemporal | undefined = await startLocalTemporal({ stateDir: home });
    let other: LocalTemporal | undefined;
    type Plan = { runningWorkflows: string[]; askedOf: string; remove: { key: string }[] };
    try {
      // This home's history holds a sweep that runs (as one cut off does until resumed).
      await own.client.workflow.start('sweepWorkflow', {
        workflowId: 'cut-off',
        taskQueue: 'nobody',
        args: [],
      });
      for (let attempt = 0; attempt < 40; attempt++) {
        const listed = await own.client.workflow.count("WorkflowType = 'sweepWorkflow'");
        if (listed.count > 0) break;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      // While a live process (as `infodisent run`) serves this home, its note says where: that server is asked.
      const served = json<Plan>(await cli(['store', 'prune', '--json'], env));
      assert.ok(served.runningWorkflows.includes('cut-off'), JSON.stringify(served));
      assert.match(served.askedOf, new RegExp(`this home's Temporal at ${own.address}`));
      await own.stop();
      own = undefined;

      // Another home's dev server (no sweeps) takes the default address where it is free: this home's
      // history is still read, and the cut-off sweep's incomplete work is kept.
      other = await startLocalTemporal({ stateDir: path.join(home, 'elsewhere'), persistent: false });
      const planned = json<Plan>(await cli(['store', 'prune', '--incomplete', '--json'], env));
      assert.ok(planned.runningWorkflows.includes('cut-off'), JSON.stringify(planned));
      assert.match(planned.askedOf, new RegExp(`^the history in ${home}`));
      assert.deepEqual(planned.remove.map((a) => a.key).sort(), [...PRUNE_FIXTURE.unused].sort());
    } finally {
      await own?.stop();
      await other?.stop();
      await rm(home, { recursive: true, force: true });
    }
  });

  let storeDir: string;
  before(async () => {
    storeDir = path.join(await mkdtemp(path.join(os.tmpdir(), 'infodisent-cli-prune-')), 'store');
    await writePruneFixture(new LocalArtifactStore(storeDir));
  });
  after(() => rm(path.dirname(storeDir), { recursive: true, force: true }));

  test('lists what no sweep uses, deletes it with --yes, and never guesses that no sweep runs', async () => {
    const store = ['store', 'prune', '--store', storeDir];
    const before = await new LocalArtifactStore(storeDir).list('');
    // Nothing answers at this address: the prune cannot tell what running sweeps use, so it stops.
    const refused = await cli(store, { TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}` });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /cannot connect to Temporal at 127\.0\.0\.1:\d+/);
    assert.match(refused.stderr, /if no sweep runs against this store, pass --offline/);

    // A put stopped midway two hours ago left its temporary file in a set the prune deletes.
    const leftover = path.join(storeDir, 'features', 'bb', 'old', 'shard-9.bin.tmp-00112233aabb');
    await writeFile(leftover, new Uint8Array(16));
    const twoHoursAgo = new Date(Date.now() - 2 * 60 * 60 * 1000);
    await utimes(leftover, twoHoursAgo, twoHoursAgo);

    const listing = await cli(['store', 'ls', '--store', storeDir]);
    assert.match(listing.stdout, /^unfinished writes: 1, 16 B \(under way, or left by a stopped writer/m);

    const dry = await cli([...store, '--offline']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /^running sweeps: not checked \(--offline\)$/m);
    assert.match(dry.stdout, /^to delete: 1 unfinished write, 16 B, left by writers stopped midway$/m);
    assert.match(dry.stdout, /^features\/bb\/old\/shard-9\.bin +16 B +\d{4}-\d\d-\d\dT/m);
    assert.match(dry.stdout, /^to delete: 3 artifacts, 768 B of features$/m);
    assert.match(dry.stdout, /^features\/bb\/old +parts train, 6 images, 2x2x8 float32 +768 B$/m);
    assert.match(dry.stdout, /^features\/bb\/cut +incomplete: a cut-off run continues it/m);
    assert.match(dry.stdout, /nothing deleted yet: run again with --yes/);
    assert.deepEqual(await new LocalArtifactStore(storeDir).list(''), before, 'a dry run deletes nothing');

    const done = json<{
      deleted: boolean;
      runningWorkflows: null;
      remove: { key: string }[];
      deletedFiles: number;
      abandonedWrites: { key: string; bytes: number }[];
    }>(await cli([...store, '--offline', '--yes', '--incomplete', '--json']));
    assert.equal(done.deleted, true);
    assert.deepEqual(
      done.abandonedWrites.map(({ key, bytes }) => ({ key, bytes })),
      [{ key: 'features/bb/old/shard-9.bin', bytes: 16 }],
    );
    // The temporary file went too, so the deleted set's folder is gone.
    assert.equal(existsSync(path.dirname(leftover)), false);
    assert.equal(done.runningWorkflows, null);
    assert.deepEqual(
      done.remove.map((a) => a.key).sort(),
      [...PRUNE_FIXTURE.unused, ...PRUNE_FIXTURE.incomplete].sort(),
    );
    // old: 3 shards and the manifest; cut: 3 shards; two heads' 3 files; a summary and a head's part of one.
    assert.equal(done.deletedFiles, 12);
    const left = json<{
      features: { key: string }[];
      heads: { key: string }[];
      summaries: { key: string }[];
      unfinishedWrites: unknown[];
    }>(await cli(['store', 'ls', '--store', storeDir, '--json']));
    assert.deepEqual(left.unfinishedWrites, []);
    assert.deepEqual(
      [...left.features, ...left.heads, ...left.summaries].map((a) => a.key).sort(),
      [...PRUNE_FIXTURE.used].sort(),
    );
    const again = await cli([...store, '--offline']);
    assert.match(again.stdout, /^to delete: 0 artifacts, 0 B of features$/m);

    // Forgetting the sweep (its results; it has no report) leaves what it used to the next prune.
    const unknown = await cli(['store', 'forget', 'nope', '--store', storeDir]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no finished sweep 'nope' in file:\/\/\S+; it holds 'kept'/);
    const listed = await cli(['store', 'forget', 'kept', '--store', storeDir]);
    assert.match(listed.stdout, /^to delete: sweep 'kept' .*: 1 result files and 0 report files$/m);
    const forgotten = json<{ location: string; sweep: string; deleted: boolean; keys: string[] }>(
      await cli(['store', 'forget', 'kept', '--store', storeDir, '--yes', '--json']),
    );
    assert.deepEqual(
      { ...forgotten, location: '' },
      { location: '', sweep: 'kept', deleted: true, keys: ['results/kept/results.json'] },
    );
    const freed = json<{ remove: { key: string }[] }>(await cli([...store, '--offline', '--yes', '--json']));
    assert.deepEqual(freed.remove.map((a) => a.key).sort(), [...PRUNE_FIXTURE.used].sort());
    assert.deepEqual(await new LocalArtifactStore(storeDir).list(''), []);
  });
});
