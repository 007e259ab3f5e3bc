import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { startLocalTemporal } from '../infra/dev-server';
import { repoRoot } from '../infra/paths';
import { resolveTool } from '../infra/tools';
import { CLI, cleanEnv, runCli } from './support/cli';

let home: string;
let temporalCli: string;
before(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), 'infodisent-dev-server-'));
  temporalCli = resolveTool('temporal', { install: true });
});
after(() => rm(home, { recursive: true, force: true }));

/** Starts a dev server through `script` (a shell script standing in for the CLI, as $TEMPORAL_CLI). */
async function startThrough(name: string, script: string) {
  const executable = path.join(home, name);
  await writeFile(executable, `#!/bin/sh\n${script}\n`);
  await chmod(executable, 0o755);
  const previous = process.env['TEMPORAL_CLI'];
  process.env['TEMPORAL_CLI'] = executable;
  try {
    return await startLocalTemporal({ stateDir: path.join(home, `${name}-state`) });
  } finally {
    if (previous === undefined) delete process.env['TEMPORAL_CLI'];
    else process.env['TEMPORAL_CLI'] = previous;
  }
}

test('a dev server slower to start than the SDK would wait for (5 s) is waited for', async () => {
  const temporal = await startThrough('slow-temporal', `sleep 6\nexec '${temporalCli}' "$@"`);
  try {
    await temporal.client.workflowService.getSystemInfo({});
    assert.match(temporal.address, /^127\.0\.0\.1:\d+$/);
  } finally {
    await temporal.stop();
  }
});

test('a dev server that exits at once fails the start with what it printed', async () => {
  await assert.rejects(
    startThrough('broken-temporal', `echo "flag provided but not defined: -db-filename" >&2\nexit 3`),
    /the Temporal dev server \(.*broken-temporal\) exited before it served 127\.0\.0\.1:\d+: flag provided but not defined/,
  );
});

test('a dev server whose run was killed outright is stopped by the next start on its database', async () => {
  const stateDir = path.join(home, 'orphan-state');
  // A process that starts the embedded server, then is killed (SIGKILL: nothing of it runs to stop the server).
  const script = `
    const { startLocalTemporal } = require(${JSON.stringify(path.join(__dirname, '../infra/dev-server.js'))});
    startLocalTemporal({ stateDir: ${JSON.stringify(stateDir)} }).then(() => process.kill(process.pid, 'SIGKILL'));`;
  assert.equal(spawnSync(process.execPath, ['-e', script], { stdio: 'ignore' }).signal, 'SIGKILL');
  const pidFile = path.join(stateDir, 'temporal.db.pid');
  const orphan = (JSON.parse(await readFile(pidFile, 'utf8')) as { server: number }).server;
  assert.ok(isAlive(orphan), 'the killed run left its dev server');
  const lines: string[] = [];
  const temporal = await startLocalTemporal({ stateDir, log: (line) => lines.push(line) });
  try {
    assert.ok(!isAlive(orphan), 'the next start stopped it');
    assert.match(lines.join('\n'), new RegExp(`stopping the Temporal dev server \\(pid ${orphan}\\)`));
  } finally {
    await temporal.stop();
  }
  await assert.rejects(readFile(pidFile), /ENOENT/, 'a stopped server leaves no pid file');
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test("run --ui's dev server serves Temporal's web UI and its API", async () => {
  const stateDir = path.join(home, 'ui-state');
  const temporal = await startLocalTemporal({ stateDir, ui: true, persistent: false });
  try {
    assert.match(temporal.uiAddress ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
    // The UI may come up a moment after the frontend the start waited for.
    let response: Response | undefined;
    for (let attempt = 0; attempt < 20 && response?.status !== 200; attempt++) {
      response = await fetch(`${temporal.uiAddress}/api/v1/namespaces/default/workflows`).catch(
        () => undefined,
      );
      if (response?.status !== 200) await new Promise((resolve) => setTimeout(resolve, 500));
    }
    assert.equal(response?.status, 200);
    // An empty list: proto3 JSON leaves an empty 'executions' out.
    assert.equal(typeof (await response!.json()), 'object');
    const page = await fetch(`${temporal.uiAddress}/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<html/i);
  } finally {
    await temporal.stop();
  }
});

test('a run stopped by SIGTERM (kill, a time limit) says how to resume it and takes its dev server along', async () => {
  const stateDir = path.join(home, 'signalled');
  const run = spawn(process.execPath, [CLI, 'run', 'experiments/smoke.json', '--home', stateDir], {
    cwd: repoRoot(),
    env: cleanEnv(),
  });
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => run.once('exit', resolve));
  await new Promise<void>((resolve, reject) => {
    run.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (/started as workflow sweep-smoke\n/.test(stderr)) resolve();
    });
    void exited.then(() => reject(new Error(`the run ended before it started: ${stderr}`)));
  });
  run.kill('SIGTERM');
  assert.equal(await exited, 143, stderr);
  assert.match(
    stderr,
    /\nSIGTERM: stopping the workers \(again to stop at once\) …\n[\s\S]*error: SIGTERM: stopped\. The sweep stays in the history at .*signalled: `infodisent run experiments\/smoke\.json` resumes it\n$/,
  );
  const processes = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
  assert.ok(!processes.includes(path.join(stateDir, 'temporal.db')), 'its dev server is still running');
});

test('a run whose configuration fails says why once, exits 1, and says how to go on', async () => {
  const stateDir = path.join(home, 'failing');
  const sweep = JSON.parse(await readFile(path.join(repoRoot(), 'experiments', 'tiny.json'), 'utf8'));
  sweep.name = 'failing';
  sweep.configurations[0].dataset = {
    kind: 'class-folders',
    name: 'folders',
    root: path.join(home, 'nowhere'),
  };
  const file = path.join(home, 'failing.json');
  await writeFile(file, JSON.stringify(sweep));
  const outcome = await runCli(['run', file, '--home', stateDir]);
  assert.equal(outcome.code, 1, outcome.stderr);
  const missing = `${path.join(home, 'nowhere')}: missing dataset root folder`;
  assert.match(outcome.stderr, new RegExp(`parts-mobilenetv2-tiny: failed · prepareDataset: ${missing}\\n`));
  assert.doesNotMatch(outcome.stderr, /\[WARN\]/, 'the SDK warnings would say it twice more');
  assert.match(
    outcome.stdout,
    /^no configuration completed\n\nFAILED parts-mobilenetv2-tiny: prepareDataset: /m,
  );
  assert.match(
    outcome.stderr,
    /1 configuration failed: fix the cause and run `infodisent run .*failing\.json` again; the stages that finished are reused\n$/,
  );
});
