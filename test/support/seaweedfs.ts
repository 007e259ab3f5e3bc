import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type SeaweedFs, type SeaweedFsOptions, startSeaweedFs } from '../../infra/seaweedfs';
import { resolveTool } from '../../infra/tools';

/** A throwaway SeaweedFS in a temporary folder; `dispose` kills it and removes its data. */
export async function startTestSeaweedFs(
  options: Pick<SeaweedFsOptions, 's3Port' | 'accessKeyId' | 'secretAccessKey'> = {},
): Promise<{ server: SeaweedFs; dispose: () => Promise<void> }> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'infodisent-s3-'));
  try {
    const server = await startSeaweedFs({
      ...options,
      dataDir,
      weed: resolveTool('weed', { install: true }),
      volumeSizeLimitMB: 64,
    });
    return {
      server,
      dispose: async () => {
        await server.kill();
        await rm(dataDir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
}
