import path from 'node:path';
import { parseArgs } from 'node:util';
import { S3ArtifactStore } from '../core/store/s3-store';
import { stateDir } from './paths';
import { startSeaweedFs } from './seaweedfs';
import { resolveTool } from './tools';

const USAGE = `usage: node dist/infra/start-s3.js [--dir <folder>] [--port <s3 port>] [--bucket <name>]

Runs a local SeaweedFS S3 server in the foreground until Ctrl-C and prints the environment
that points the AWS SDK, the AWS CLI and openStore('s3://<bucket>') at it.
Data and credentials persist in --dir (default: <state dir>/seaweedfs).`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      dir: { type: 'string', default: path.join(stateDir(), 'seaweedfs') },
      port: { type: 'string', default: '8333' },
      bucket: { type: 'string', default: 'infodisent' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const s3Port = Number(values.port);
  if (!Number.isInteger(s3Port) || s3Port <= 0 || s3Port > 65535)
    throw new Error(`invalid --port '${values.port}'`);

  const weed = resolveTool('weed', { install: true, log: (line) => console.error(line) });
  console.error(`starting SeaweedFS from ${weed} with data in ${values.dir} …`);
  const server = await startSeaweedFs({ dataDir: values.dir, s3Port, weed });
  let stopping = false;
  const stop = () => {
    // weed's filer waits 15 s for its gRPC streams to close; a second Ctrl-C does not wait.
    const stopped = stopping ? server.kill() : server.stop();
    if (!stopping) console.error('stopping SeaweedFS (up to ~15 s; Ctrl-C again to kill it) …');
    stopping = true;
    stopped.then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  await new S3ArtifactStore({
    bucket: values.bucket,
    endpoint: server.endpoint,
    region: server.region,
    forcePathStyle: true,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
  }).createBucket();

  for (const [name, value] of Object.entries(server.env())) console.log(`export ${name}=${value}`);
  console.log(`# store URL: s3://${values.bucket}`);
  console.error(`SeaweedFS S3 is serving at ${server.endpoint} (log: ${server.logFile}). Ctrl-C stops it.`);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
