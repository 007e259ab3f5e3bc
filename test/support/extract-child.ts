/**
 * Runs one feature extraction in a child process, so a test can kill it midway (test/extract-s3.test.ts).
 * argv[2]: JSON of ExtractChildRequest. Before going on past each progress step it sends the progress to
 * the parent and waits for any reply: the parent decides, with the child standing still, when to kill it.
 */
import { loadOnnxBackbone } from '../../core/backbones/onnx-backbone';
import type { DatasetManifest } from '../../core/data/dataset';
import { extractFeatures } from '../../core/features/feature-store';
import { S3ArtifactStore, type S3StoreOptions } from '../../core/store/s3-store';

export interface ExtractChildRequest {
  store: S3StoreOptions;
  model: string;
  dataset: DatasetManifest;
  shardSize: number;
  batchSize: number;
}

async function main(): Promise<void> {
  const request = JSON.parse(process.argv[2]!) as ExtractChildRequest;
  const backbone = await loadOnnxBackbone({ file: request.model, preset: 'resnet50', intraOpNumThreads: 1 });
  const send = process.send!.bind(process);
  await extractFeatures({
    store: new S3ArtifactStore(request.store),
    dataset: request.dataset,
    split: 'train',
    backbone,
    shardSize: request.shardSize,
    batchSize: request.batchSize,
    onProgress: (progress) =>
      new Promise<void>((resolve) => {
        process.once('message', () => resolve());
        send(progress);
      }),
  });
  process.disconnect();
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
