import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { resolveTool } from './tools';

export interface LocalTemporal {
  environment: TestWorkflowEnvironment;
  address: string;
  uiAddress: string | null;
  stop(): Promise<void>;
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts a Temporal dev server (the `temporal` CLI) whose database file lives in `stateDir`, so the
 * next start sees this run's history. Prefers the standard ports 7233 (and 8233 for the UI) when free.
 */
export async function startLocalTemporal(options: {
  stateDir: string;
  log?: (line: string) => void;
  ui?: boolean;
  /** Keep history between starts (default); false gives an in-memory server, as tests want. */
  persistent?: boolean;
}): Promise<LocalTemporal> {
  const executable = resolveTool('temporal', { install: true, ...(options.log ? { log: options.log } : {}) });
  mkdirSync(options.stateDir, { recursive: true });
  const port = (await portIsFree(7233)) ? 7233 : await freePort();
  const ui = options.ui ?? false;
  const uiPort = ui ? ((await portIsFree(8233)) ? 8233 : await freePort()) : undefined;
  const environment = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: executable },
      ip: '127.0.0.1',
      port,
      ui,
      ...(uiPort ? { uiPort } : {}),
      ...(options.persistent === false ? {} : { dbFilename: path.join(options.stateDir, 'temporal.db') }),
      log: { format: 'pretty', level: 'error' },
    },
  });
  return {
    environment,
    address: `127.0.0.1:${port}`,
    uiAddress: uiPort ? `http://127.0.0.1:${uiPort}` : null,
    stop: () => environment.teardown(),
  };
}

/**
 * Starts Temporal's time-skipping test server (`temporal-test-server`, found like the dev server's binary):
 * timers and retry backoffs pass at once while a client awaits a workflow's result, or as far as
 * `environment.sleep()` says, so tests of long waits take seconds.
 */
export function startTimeSkippingTemporal(
  options: { log?: (line: string) => void } = {},
): Promise<TestWorkflowEnvironment> {
  const executable = resolveTool('temporal-test-server', {
    install: true,
    ...(options.log ? { log: options.log } : {}),
  });
  return TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: executable } },
  });
}

/**
 * A dev server on the database `startLocalTemporal` keeps in `stateDir`, its output discarded (a command
 * that prints JSON cannot have the server's banner in its stdout), for a short read of the history there.
 */
export async function startQuietTemporal(
  stateDir: string,
  log?: (line: string) => void,
): Promise<{ client: Client; stop(): Promise<void> }> {
  const executable = resolveTool('temporal', { install: true, ...(log ? { log } : {}) });
  const port = await freePort();
  const server = spawn(
    executable,
    [
      ...['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port), '--headless'],
      ...['--db-filename', path.join(stateDir, 'temporal.db'), '--log-level', 'error'],
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  server.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => server.once('exit', resolve));
  const stop = async () => {
    server.kill('SIGTERM');
    await exited;
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (server.exitCode !== null)
      throw new Error(`the Temporal dev server on ${stateDir} exited (${server.exitCode}): ${stderr.trim()}`);
    try {
      const connection = await Connection.connect({ address: `127.0.0.1:${port}`, connectTimeout: '1s' });
      const client = new Client({ connection });
      return {
        client,
        stop: async () => {
          await connection.close();
          await stop();
        },
      };
    } catch (error) {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`the Temporal dev server on ${stateDir} did not answer within 60 s: ${error}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}
