import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Client, Connection } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { NativeConnection } from '@temporalio/worker';
import { resolveTool } from './tools';

export interface LocalTemporal {
  client: Client;
  /** For workers in this process. */
  nativeConnection: NativeConnection;
  address: string;
  uiAddress: string | null;
  /** Closes both connections, then stops the server. */
  stop(): Promise<void>;
  /**
   * Stops the server and closes the workers' connection, leaving the client's to the process's exit: for a run
   * cut short (a signal), whose client may be retrying a call, and closing its channel then makes that retry
   * throw where nothing catches it.
   */
  abandon(): Promise<void>;
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
  mkdirSync(options.stateDir, { recursive: true });
  const port = (await portIsFree(7233)) ? 7233 : await freePort();
  const uiPort = options.ui ? ((await portIsFree(8233)) ? 8233 : await freePort()) : null;
  const server = await startDevServer({
    ...(options.log ? { log: options.log } : {}),
    port,
    uiPort,
    dbFile: options.persistent === false ? null : path.join(options.stateDir, 'temporal.db'),
    relayErrors: true,
  });
  const address = `127.0.0.1:${port}`;
  let nativeConnection: NativeConnection;
  try {
    nativeConnection = await NativeConnection.connect({ address });
  } catch (error) {
    await server.stop();
    throw error;
  }
  return {
    client: new Client({ connection: server.connection }),
    nativeConnection,
    address,
    uiAddress: uiPort ? `http://127.0.0.1:${uiPort}` : null,
    stop: async () => {
      await nativeConnection.close();
      await server.stop();
    },
    abandon: async () => {
      await nativeConnection.close();
      await server.stopProcess();
    },
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
 * A dev server on the database `startLocalTemporal` keeps in `stateDir`, its errors not relayed (a command
 * that prints JSON must not have them in its output), for a short read of the history there.
 */
export async function startQuietTemporal(
  stateDir: string,
  log?: (line: string) => void,
): Promise<{ client: Client; stop(): Promise<void> }> {
  const server = await startDevServer({
    ...(log ? { log } : {}),
    port: await freePort(),
    uiPort: null,
    dbFile: path.join(stateDir, 'temporal.db'),
    relayErrors: false,
  });
  return { client: new Client({ connection: server.connection }), stop: server.stop };
}

/**
 * The SDK's own start (`TestWorkflowEnvironment.createLocal`) gives the server 5 s to answer, which a first
 * start of the binary from a cold disk on a busy machine exceeds: `npm start` failed so on a 2-core machine
 * whose next start took 0.5 s.
 */
const STARTUP_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 5_000;

/**
 * Runs `temporal server start-dev` and resolves once it answers a client. Its banner is dropped; its
 * error lines go to this process's stderr while it serves when `relayErrors`, and into the error when it
 * fails to start. It is killed with this process.
 */
async function startDevServer(options: {
  /** Told when the `temporal` binary is installed first (resolveTool). */
  log?: (line: string) => void;
  port: number;
  uiPort: number | null;
  dbFile: string | null;
  relayErrors: boolean;
}): Promise<{ connection: Connection; stop(): Promise<void>; stopProcess(): Promise<void> }> {
  const executable = resolveTool('temporal', { install: true, ...(options.log ? { log: options.log } : {}) });
  const address = `127.0.0.1:${options.port}`;
  if (options.dbFile) await stopOrphanedServer(options.dbFile, options.log);
  const child = spawn(
    executable,
    [
      ...['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(options.port)],
      ...(options.uiPort ? ['--ui-port', String(options.uiPort)] : ['--headless']),
      ...(options.dbFile ? ['--db-filename', options.dbFile] : []),
      ...['--log-level', 'error'],
      // What the SDK's createLocal sets, so tests and the embedded run see the same server.
      ...['--dynamic-config-value', 'frontend.enableServerVersionCheck=false'],
      ...['--dynamic-config-value', 'frontend.enableUpdateWorkflowExecution=true'],
      ...['--dynamic-config-value', 'frontend.enableUpdateWorkflowExecutionAsyncAccepted=true'],
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  // A server another live process keeps on this database (a run, while a command reads its history) keeps its note.
  const pidFile =
    options.dbFile && child.pid !== undefined && !liveServer(options.dbFile)
      ? serverPidFile(options.dbFile)
      : undefined;
  if (pidFile) {
    const pids: ServerPids = { server: child.pid!, owner: process.pid, address };
    writeFileSync(pidFile, JSON.stringify(pids));
  }
  let starting = true;
  let stopping = false;
  let startupErrors = '';
  // Line by line: a poll cancelled as workers stop (a run's end, Ctrl-C) is logged as an error with
  // 'context canceled', which says nothing wrong about the run.
  createInterface({ input: child.stderr! }).on('line', (line) => {
    if (starting) startupErrors += `${line}\n`;
    else if (options.relayErrors && !stopping && !line.includes('context canceled'))
      process.stderr.write(`${line}\n`);
  });
  const killOnExit = () => child.kill('SIGKILL');
  process.on('exit', killOnExit);
  let ended = false;
  const exited = new Promise<void>((resolve) => {
    child.once('error', (error) => {
      startupErrors += String(error);
      resolve();
    });
    child.once('exit', () => resolve());
  }).then(() => {
    ended = true;
    process.off('exit', killOnExit);
    if (pidFile) rmSync(pidFile, { force: true });
  });
  const stop = async () => {
    stopping = true;
    if (ended) return;
    child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise((resolve) => (timer = setTimeout(resolve, STOP_GRACE_MS)))]);
    clearTimeout(timer);
    child.kill('SIGKILL');
    await exited;
  };
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  for (;;) {
    if (ended)
      throw new Error(
        `the Temporal dev server (${executable}) exited before it served ${address}: ${startupErrors.trim() || `exit code ${child.exitCode}`}`,
      );
    try {
      const connection = await Connection.connect({ address, connectTimeout: '1s' });
      starting = false;
      return {
        connection,
        stop: async () => {
          await connection.close();
          await stop();
        },
        stopProcess: stop,
      };
    } catch (error) {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(
          `the Temporal dev server (${executable}) did not answer at ${address} within ${STARTUP_TIMEOUT_MS / 1000} s: ${error}${startupErrors.trim() ? `; it said: ${startupErrors.trim()}` : ''}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** Beside the database: the dev server serving it, the process that started it, and where it serves. */
interface ServerPids {
  server: number;
  owner: number;
  address: string;
}

const serverPidFile = (dbFile: string) => `${dbFile}.pid`;

function readServerPids(dbFile: string): ServerPids | undefined {
  try {
    return JSON.parse(readFileSync(serverPidFile(dbFile), 'utf8')) as ServerPids;
  } catch {
    return undefined;
  }
}

/** The server a live process (e.g. `infodisent run`) keeps serving `dbFile`, if one does. */
function liveServer(dbFile: string): ServerPids | undefined {
  const pids = readServerPids(dbFile);
  return pids && isAlive(pids.owner) && isAlive(pids.server) ? pids : undefined;
}

/**
 * Where a live process serves the history `startLocalTemporal` keeps in `stateDir` (another home's run may hold
 * the default port): a reader asks it rather than open the database a second time.
 */
export function liveLocalTemporalAddress(stateDir: string): string | undefined {
  return liveServer(path.join(stateDir, 'temporal.db'))?.address;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Stops a dev server still serving `dbFile` whose starter is gone: a run killed outright (SIGKILL, an
 * out-of-memory kill) cannot take its server along, and a second server on the same SQLite database would
 * share it with the first. Only a process whose command line names the database is stopped (Linux's /proc).
 */
async function stopOrphanedServer(dbFile: string, log?: (line: string) => void): Promise<void> {
  const pids = readServerPids(dbFile);
  if (!pids || isAlive(pids.owner) || !isAlive(pids.server)) return;
  let commandLine: string;
  try {
    commandLine = readFileSync(`/proc/${pids.server}/cmdline`, 'utf8');
  } catch {
    return;
  }
  if (!commandLine.split('\0').includes(dbFile)) return;
  log?.(
    `stopping the Temporal dev server (pid ${pids.server}) that a run killed outright left serving ${dbFile}`,
  );
  process.kill(pids.server, 'SIGTERM');
  const deadline = Date.now() + STOP_GRACE_MS;
  while (isAlive(pids.server) && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 100));
  if (isAlive(pids.server)) process.kill(pids.server, 'SIGKILL');
}
