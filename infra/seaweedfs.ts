import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { resolveTool } from './tools';

export interface SeaweedFsOptions {
  /** Holds volumes, metadata, the S3 identities config and weed.log; reuse it to keep the data across runs. */
  dataDir: string;
  /** S3 port on 127.0.0.1; default: a free one. The other SeaweedFS ports are always free ones. */
  s3Port?: number;
  /** The S3 identity. Default: the one stored in dataDir by an earlier run, else a new random one. */
  accessKeyId?: string;
  secretAccessKey?: string;
  /** Size at which SeaweedFS starts a new volume file. Default 1024 MiB. */
  volumeSizeLimitMB?: number;
  /** How long to wait until S3 and the storage path answer. Default 60 s. */
  startTimeoutMs?: number;
  /** The weed binary. Default: resolveTool('weed'). */
  weed?: string;
}

const PORT_NAMES = [
  'master',
  'masterGrpc',
  'volume',
  'volumeGrpc',
  'filer',
  'filerGrpc',
  's3',
  's3Grpc',
] as const;
type Ports = Record<(typeof PORT_NAMES)[number], number>;

const REGION = 'us-east-1';
const LOG_TAIL_BYTES = 6000;

/** A local SeaweedFS (master, volume, filer and S3 gateway in one `weed server` process) on loopback ports. */
export class SeaweedFs {
  readonly endpoint: string;
  readonly region = REGION;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private logOffset = 0;
  private spawnError: Error | undefined;
  private readonly killOnExit = () => this.child?.kill('SIGKILL');

  private constructor(
    readonly dataDir: string,
    readonly accessKeyId: string,
    readonly secretAccessKey: string,
    private readonly ports: Ports,
    private readonly weed: string,
    private readonly volumeSizeLimitMB: number,
    private readonly startTimeoutMs: number,
  ) {
    this.endpoint = `http://127.0.0.1:${ports.s3}`;
  }

  /** @internal use startSeaweedFs */
  static async create(options: SeaweedFsOptions, ports: Ports): Promise<SeaweedFs> {
    const dataDir = path.resolve(options.dataDir);
    await mkdir(path.join(dataDir, 'volumes'), { recursive: true });
    await mkdir(path.join(dataDir, 'master'), { recursive: true });
    const stored = await readIdentity(identitiesPath(dataDir));
    const accessKeyId =
      options.accessKeyId ?? stored?.accessKeyId ?? randomBytes(10).toString('hex').toUpperCase();
    const secretAccessKey =
      options.secretAccessKey ?? stored?.secretAccessKey ?? randomBytes(30).toString('base64url');
    const identities = {
      identities: [
        {
          name: 'infodisent',
          credentials: [{ accessKey: accessKeyId, secretKey: secretAccessKey }],
          actions: ['Admin', 'Read', 'Write', 'List', 'Tagging'],
        },
      ],
    };
    await writeFile(identitiesPath(dataDir), `${JSON.stringify(identities, null, 2)}\n`, { mode: 0o600 });
    return new SeaweedFs(
      dataDir,
      accessKeyId,
      secretAccessKey,
      ports,
      options.weed ?? resolveTool('weed'),
      options.volumeSizeLimitMB ?? 1024,
      options.startTimeoutMs ?? 60_000,
    );
  }

  get running(): boolean {
    const child = this.child;
    return child?.pid !== undefined && child.exitCode === null && child.signalCode === null;
  }

  get logFile(): string {
    return path.join(this.dataDir, 'weed.log');
  }

  /** The variables the AWS SDKs and CLI read; `openStore('s3://bucket')` picks them up too. */
  env(): Record<string, string> {
    return {
      AWS_ENDPOINT_URL_S3: this.endpoint,
      AWS_ACCESS_KEY_ID: this.accessKeyId,
      AWS_SECRET_ACCESS_KEY: this.secretAccessKey,
      AWS_REGION: this.region,
    };
  }

  /** Starts the process (again, after kill/stop: same ports, same data) and waits until it serves requests. */
  async start(): Promise<void> {
    if (this.running) throw new Error(`SeaweedFS is already running at ${this.endpoint}`);
    this.logOffset = await stat(this.logFile).then(
      (s) => s.size,
      () => 0,
    );
    const log = openSync(this.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(this.weed, this.args(), { stdio: ['ignore', log, log] });
    } finally {
      closeSync(log);
    }
    this.child = child;
    this.spawnError = undefined;
    this.exited = new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', (error) => {
        this.spawnError = error;
        resolve();
      });
    }).then(() => {
      process.off('exit', this.killOnExit);
      return removeUnixSockets(Object.values(this.ports));
    });
    process.on('exit', this.killOnExit);
    try {
      await this.waitUntilReady();
    } catch (error) {
      await this.kill();
      throw error;
    }
  }

  /** SIGKILL, like a crash: what was acknowledged stays on disk, in-flight requests are cut. */
  async kill(): Promise<void> {
    this.child?.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM, then SIGKILL after graceMs (weed can take ~15 s to wind down). */
  async stop(graceMs = 20_000): Promise<void> {
    if (!this.running) return this.exited;
    this.child?.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.exited, new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    await this.kill();
  }

  /** The end of what this run of weed wrote, for error messages. */
  async logTail(): Promise<string> {
    try {
      const file = await open(this.logFile, 'r');
      try {
        const { size } = await file.stat();
        const start = Math.max(this.logOffset, size - LOG_TAIL_BYTES);
        const { buffer, bytesRead } = await file.read(Buffer.alloc(size - start), 0, size - start, start);
        return buffer.subarray(0, bytesRead).toString('utf8');
      } finally {
        await file.close();
      }
    } catch {
      return '';
    }
  }

  private args(): string[] {
    const p = this.ports;
    return [
      'server',
      `-dir=${path.join(this.dataDir, 'volumes')}`,
      `-master.dir=${path.join(this.dataDir, 'master')}`,
      '-ip=127.0.0.1',
      '-ip.bind=127.0.0.1',
      `-master.port=${p.master}`,
      `-master.port.grpc=${p.masterGrpc}`,
      // Resuming raft state makes a restarted single master wait ~20 s for an election;
      // the master rebuilds its topology from the volume server's heartbeats anyway.
      '-master.resumeState=false',
      '-master.telemetry=false',
      `-master.volumeSizeLimitMB=${this.volumeSizeLimitMB}`,
      `-volume.port=${p.volume}`,
      `-volume.port.grpc=${p.volumeGrpc}`,
      // Each bucket is a collection that grows several volumes at once; the default cap of 8 fits one bucket.
      '-volume.max=0',
      '-volume.preStopSeconds=0',
      '-filer',
      `-filer.port=${p.filer}`,
      `-filer.port.grpc=${p.filerGrpc}`,
      '-s3',
      `-s3.port=${p.s3}`,
      `-s3.port.grpc=${p.s3Grpc}`,
      '-s3.port.iceberg=0',
      '-s3.port.lance=0',
      `-s3.config=${identitiesPath(this.dataDir)}`,
      // Like AWS: writing to a missing bucket is an error, not an implicit create.
      '-s3.autoCreateBucket=false',
    ];
  }

  /**
   * Ready means the S3 gateway answers and a write/read/delete through the filer works: the S3 port opens
   * before the volume server has registered with the master, and requests fail until it has.
   */
  private async waitUntilReady(): Promise<void> {
    const deadline = Date.now() + this.startTimeoutMs;
    const probe = `http://127.0.0.1:${this.ports.filer}/.infodisent-probe/ready`;
    let lastError = 'no answer yet';
    while (Date.now() < deadline) {
      if (!this.running) {
        const reason = this.spawnError
          ? `could not be run: ${this.spawnError.message}`
          : 'exited during startup';
        throw new Error(`SeaweedFS (${this.weed}) ${reason}:\n${await this.logTail()}`);
      }
      try {
        await fetch(`${this.endpoint}/`, { signal: AbortSignal.timeout(2000) });
        const put = await fetch(probe, { method: 'PUT', body: 'ok', signal: AbortSignal.timeout(2000) });
        if (!put.ok) throw new Error(`filer write probe answered HTTP ${put.status}`);
        const got = await fetch(probe, { signal: AbortSignal.timeout(2000) });
        if ((await got.text()) !== 'ok') throw new Error(`filer read probe answered HTTP ${got.status}`);
        await fetch(probe, { method: 'DELETE', signal: AbortSignal.timeout(2000) });
        return;
      } catch (error) {
        lastError = error instanceof Error ? `${error.message}${causeOf(error)}` : String(error);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(
      `SeaweedFS S3 at ${this.endpoint} was not ready within ${this.startTimeoutMs / 1000} s (${lastError}). ` +
        `weed output:\n${await this.logTail()}`,
    );
  }
}

/**
 * Starts SeaweedFS with its S3 API on 127.0.0.1 and one S3 identity, and resolves once it serves requests.
 * Stop it with `stop()` (or `kill()`); it is also killed when this Node process exits.
 */
export async function startSeaweedFs(options: SeaweedFsOptions): Promise<SeaweedFs> {
  // A port found free can be taken before weed binds it; with ports of our own choosing, try fresh ones.
  for (let attempt = 1; ; attempt++) {
    const picked = await freePorts(PORT_NAMES.length);
    const ports = Object.fromEntries(PORT_NAMES.map((name, i) => [name, picked[i]!])) as Ports;
    if (options.s3Port !== undefined) ports.s3 = options.s3Port;
    const server = await SeaweedFs.create(options, ports);
    try {
      await server.start();
      return server;
    } catch (error) {
      const portClash = error instanceof Error && /address already in use/.test(error.message);
      if (!portClash || options.s3Port !== undefined || attempt >= 3) throw error;
    }
  }
}

function identitiesPath(dataDir: string): string {
  return path.join(dataDir, 's3-identities.json');
}

async function readIdentity(
  file: string,
): Promise<{ accessKeyId: string; secretAccessKey: string } | undefined> {
  try {
    const config = JSON.parse(await readFile(file, 'utf8')) as {
      identities?: { credentials?: { accessKey?: string; secretKey?: string }[] }[];
    };
    const credentials = config.identities?.[0]?.credentials?.[0];
    if (credentials?.accessKey && credentials.secretKey) {
      return { accessKeyId: credentials.accessKey, secretAccessKey: credentials.secretKey };
    }
  } catch {
    // No usable config from an earlier run: new credentials.
  }
  return undefined;
}

/** Distinct free loopback ports: all bound at once (port 0) so none repeats, then released. */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<import('node:net').Server>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((server) => (server.address() as import('node:net').AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

/** weed leaves /tmp/seaweedfs-<component>-<port>.sock behind when killed. */
async function removeUnixSockets(ports: number[]): Promise<void> {
  const names = await readdir('/tmp').catch(() => [] as string[]);
  const ours = names.filter((name) => {
    const match = /^seaweedfs-[a-z0-9-]+-(\d+)\.sock$/.exec(name);
    return match !== null && ports.includes(Number(match[1]));
  });
  await Promise.all(ours.map((name) => rm(path.join('/tmp', name), { force: true })));
}

function causeOf(error: Error): string {
  return error.cause instanceof Error ? ` (${error.cause.message})` : '';
}
