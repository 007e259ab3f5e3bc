import { readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { Client, Connection, type TLSConfig } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { type Command, Option } from 'commander';
import type { ArtifactStore } from '../core/store/artifact-store';
import { openStore } from '../core/store/open-store';
import { S3ArtifactStore } from '../core/store/s3-store';
import { stateDir } from '../infra/paths';
import { installRuntime } from '../worker/runtime';
import { DEFAULT_TASK_QUEUES, type TaskQueues } from '../workflows/progress';
import { CliError } from './output';

/** Where Temporal is and how to authenticate: plain, TLS, mTLS (client certificate) or an API key. */
export interface ConnectionFlags {
  address: string;
  namespace: string;
  tls?: boolean;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  tlsServerName?: string;
  apiKey?: string;
}

export interface StoreFlags {
  store: string;
  s3Endpoint?: string;
  /** Only commands that write (workers) offer --create-bucket. */
  createBucket?: boolean;
}

export interface QueueFlags {
  gpuQueue: string;
  cpuQueue: string;
}

export function addConnectionOptions(command: Command): Command {
  return command
    .addOption(
      new Option('--address <host:port>', 'Temporal frontend address')
        .env('TEMPORAL_ADDRESS')
        .default('127.0.0.1:7233'),
    )
    .addOption(
      new Option('--namespace <name>', 'Temporal namespace').env('TEMPORAL_NAMESPACE').default('default'),
    )
    .addOption(
      new Option(
        '--tls',
        'connect with TLS, also when TEMPORAL_TLS is set (implied by --tls-cert, --tls-ca, --tls-server-name, --api-key)',
      ).env('TEMPORAL_TLS'),
    )
    .addOption(
      new Option('--tls-cert <file>', 'client certificate (PEM) for mTLS; needs --tls-key').env(
        'TEMPORAL_TLS_CERT',
      ),
    )
    .addOption(new Option('--tls-key <file>', 'private key (PEM) of --tls-cert').env('TEMPORAL_TLS_KEY'))
    .addOption(
      new Option(
        '--tls-ca <file>',
        'CA certificate (PEM) to trust for the server (default: the system roots)',
      ).env('TEMPORAL_TLS_CA'),
    )
    .addOption(
      new Option(
        '--tls-server-name <name>',
        'server name to verify, when it differs from the address host',
      ).env('TEMPORAL_TLS_SERVER_NAME'),
    )
    .addOption(
      new Option(
        '--api-key <key>',
        'API key, sent as a bearer token (prefer the environment variable: other users can read command lines)',
      ).env('TEMPORAL_API_KEY'),
    );
}

export function addStoreOptions(command: Command): Command {
  return command
    .addOption(
      new Option(
        '--store <url>',
        'artifact store: a folder, file:///path or s3://bucket/prefix (S3 credentials come from the standard AWS chain)',
      )
        .env('INFODISENT_STORE')
        .default(path.join(stateDir(), 'store'), '<state dir>/store'),
    )
    .option('--s3-endpoint <url>', 'S3-compatible server for s3:// stores, e.g. http://seaweedfs:8333');
}

/** Where generated datasets live on this machine: the same folder for workers and commands that read them. */
export function addDataDirOption(command: Command): Command {
  return command.addOption(
    new Option('--data-dir <dir>', 'folder for generated datasets').default(
      path.join(stateDir(), 'datasets'),
      '<state dir>/datasets',
    ),
  );
}

export interface NotifyFlag {
  notifyUrl?: string;
}

/** The webhook a finished sweep is posted to (Slack, Mattermost or any JSON endpoint): workers and `run`. */
export function addNotifyOption(command: Command): Command {
  return command.addOption(
    new Option(
      '--notify-url <url>',
      'webhook that a finished sweep is posted to as JSON (Slack-compatible "text"); on CPU workers (prefer the variable: it holds a token)',
    ).env('INFODISENT_NOTIFY_URL'),
  );
}

/** Task queues: where a sweep's work is sent (sweep start, schedules) or taken from (workers). */
export function addQueueOptions(command: Command): Command {
  return command
    .option('--gpu-queue <name>', 'task queue for GPU work', DEFAULT_TASK_QUEUES.gpu)
    .option('--cpu-queue <name>', 'task queue for workflows and CPU work', DEFAULT_TASK_QUEUES.cpu);
}

export function queuesFrom(flags: QueueFlags): TaskQueues {
  return { gpu: flags.gpuQueue, cpu: flags.cpuQueue };
}

async function readPem(flag: string, file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    throw new CliError(
      `cannot read ${flag} file '${file}': ${(error as NodeJS.ErrnoException).code ?? error}`,
      2,
    );
  }
}

/** The options both connection kinds share; reads the certificate files. */
async function temporalOptions(
  flags: ConnectionFlags,
): Promise<{ address: string; tls?: TLSConfig; apiKey?: string }> {
  if (Boolean(flags.tlsCert) !== Boolean(flags.tlsKey)) {
    throw new CliError('--tls-cert and --tls-key go together: mTLS needs the certificate and its key', 2);
  }
  const tlsWanted = flags.tls || flags.tlsCert || flags.tlsCa || flags.tlsServerName;
  const tls: TLSConfig | undefined = tlsWanted
    ? {
        ...(flags.tlsServerName ? { serverNameOverride: flags.tlsServerName } : {}),
        ...(flags.tlsCa ? { serverRootCACertificate: await readPem('--tls-ca', flags.tlsCa) } : {}),
        ...(flags.tlsCert && flags.tlsKey
          ? {
              clientCertPair: {
                crt: await readPem('--tls-cert', flags.tlsCert),
                key: await readPem('--tls-key', flags.tlsKey),
              },
            }
          : {}),
      }
    : undefined;
  // With an API key and no TLS settings the SDK turns TLS on by itself.
  return {
    address: flags.address,
    ...(tls ? { tls } : {}),
    ...(flags.apiKey ? { apiKey: flags.apiKey } : {}),
  };
}

/** Why a connection failed, in words: the worker's native client spells out its Rust error types. */
export function connectionFailure(error: unknown): string {
  const message = (error as Error).message ?? String(error);
  if (/connection refused|ECONNREFUSED/i.test(message))
    return 'connection refused (nothing listens at that port)';
  if (/dns error|failed to lookup address|ENOTFOUND|EAI_AGAIN/i.test(message))
    return 'the host name does not resolve';
  return message;
}

function unreachable(flags: ConnectionFlags, error: unknown): CliError {
  const how = flags.tls || flags.tlsCert || flags.tlsCa || flags.apiKey ? ' over TLS' : '';
  return new CliError(
    `cannot connect to Temporal at ${flags.address}${how}: ${connectionFailure(error)} ` +
      '(set --address or TEMPORAL_ADDRESS; with TLS or an API key check --tls-* / --api-key)',
    1,
    { cause: error },
  );
}

/**
 * Rejects when the address refuses a TCP connection or its host does not resolve. The client would retry
 * both until its connect timeout; anything else (a slow or filtered host) is left to the client to judge.
 */
function probeAddress(address: string): Promise<void> {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  const port = Number(address.slice(colon + 1));
  if (colon < 0 || !Number.isInteger(port)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, timeout: 3000 });
    const settle = (error?: NodeJS.ErrnoException) => {
      socket.destroy();
      if (error && ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN'].includes(error.code ?? '')) reject(error);
      else resolve();
    };
    socket.once('connect', () => settle());
    socket.once('timeout', () => settle());
    socket.once('error', settle);
  });
}

/** Connects a client for the CLI's commands; fails fast, naming the address, when Temporal does not answer. */
export async function connectClient(flags: ConnectionFlags, connectTimeout = '10s'): Promise<Client> {
  const options = await temporalOptions(flags);
  let connection: Connection;
  try {
    await probeAddress(flags.address);
    connection = await Connection.connect({ ...options, connectTimeout });
  } catch (error) {
    throw unreachable(flags, error);
  }
  return new Client({ connection, namespace: flags.namespace });
}

/** Runs `work` with a connected client and closes the connection afterwards. */
export async function withClient<T>(
  flags: ConnectionFlags,
  work: (client: Client) => Promise<T>,
): Promise<T> {
  const client = await connectClient(flags);
  try {
    return await work(client);
  } finally {
    await client.connection.close();
  }
}

/** The connection workers poll through (installs the SDK runtime first, as it must precede any connection). */
export async function connectNative(flags: ConnectionFlags): Promise<NativeConnection> {
  const options = await temporalOptions(flags);
  installRuntime();
  try {
    return await NativeConnection.connect(options);
  } catch (error) {
    throw unreachable(flags, error);
  }
}

/**
 * The store URL with --s3-endpoint folded in: stages open the store from the URL alone (in their own
 * threads), so every setting must travel in it.
 */
export function storeUrlFrom(flags: StoreFlags): string {
  if (!flags.s3Endpoint) return flags.store;
  if (!flags.store.startsWith('s3://')) throw new CliError('--s3-endpoint needs an s3:// --store', 2);
  const url = new URL(flags.store);
  url.searchParams.set('endpoint', flags.s3Endpoint);
  return url.toString();
}

/**
 * Opens the store and makes one cheap read, so that wrong credentials or a missing bucket stop a worker at
 * startup rather than in its first activity (S3 errors name the access key ID, never the secret).
 * With --create-bucket a missing bucket is created.
 */
export async function openCheckedStore(flags: StoreFlags): Promise<{ url: string; store: ArtifactStore }> {
  const url = storeUrlFrom(flags);
  let store: ArtifactStore;
  try {
    store = openStore(url);
  } catch (error) {
    throw new CliError(`--store ${flags.store}: ${(error as Error).message}`, 2);
  }
  try {
    if (flags.createBucket && store instanceof S3ArtifactStore) await store.createBucket();
    await store.exists('.infodisent-store-check');
  } catch (error) {
    throw new CliError(`cannot use the store ${store.location}: ${(error as Error).message}`, 1, {
      cause: error,
    });
  }
  return { url, store };
}
