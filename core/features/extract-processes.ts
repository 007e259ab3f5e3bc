import { type ChildProcess, fork } from 'node:child_process';
import path from 'node:path';
import type { BackboneInfo } from '../backbones/backbone-thread';
import type { BackboneSpec } from '../backbones/registry';
import type { DatasetManifest, Split } from '../data/dataset';
import type { ArtifactStore } from '../store/artifact-store';
import { type ErrorMessage, fromErrorMessage } from '../util/errors';
import type { FeatureDtype } from './feature-set';
import {
  DEFAULT_PREPROCESS_THREADS,
  type ExtractionProgress,
  type ExtractionResult,
  runExtraction,
  type ShardEntry,
  type ShardToCompute,
} from './feature-store';

/** What the parent asks of an extraction process: first to open the backbone, then to compute shards. */
export type ExtractionProcessRequest =
  | {
      kind: 'open';
      storeUrl: string;
      dataset: DatasetManifest;
      backbone: BackboneSpec;
      dtype: FeatureDtype;
      batchSize?: number;
      preprocessThreads: number;
      skipUnreadable: boolean;
    }
  | { kind: 'compute'; shards: ShardToCompute[] };

export type ExtractionProcessMessage =
  | { kind: 'open'; info: BackboneInfo }
  | { kind: 'batch'; count: number }
  | { kind: 'shard'; index: number; entry: ShardEntry }
  | { kind: 'done' }
  | { kind: 'error'; error: ErrorMessage };

export interface ProcessExtractionOptions {
  /** The store, and its URL for the processes to open it again. */
  store: ArtifactStore;
  storeUrl: string;
  dataset: DatasetManifest;
  split: Split;
  backbone: BackboneSpec;
  dtype?: FeatureDtype;
  shardSize?: number;
  batchSize?: number;
  /** As extractFeatures' (ExtractionTarget). */
  skipUnreadable?: boolean;
  /** Processes extracting at once (at least 2 to be worth it). */
  processes: number;
  /** Threads preparing images, shared out between the processes. Default DEFAULT_PREPROCESS_THREADS. */
  preprocessThreads?: number;
  onProgress?: (progress: ExtractionProgress) => void | Promise<void>;
}

/** One extraction process: its messages as they come, and how it ended. */
class ExtractionProcess {
  readonly child: ChildProcess;
  private readonly handlers = new Set<(message: ExtractionProcessMessage) => void>();
  readonly exited: Promise<void>;

  constructor() {
    this.child = fork(path.join(__dirname, 'extract-process.js'), [], {
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.child.on('message', (message: ExtractionProcessMessage) => {
      for (const handler of this.handlers) handler(message);
    });
    this.exited = new Promise((resolve, reject) => {
      this.child.on('error', reject);
      this.child.on('exit', (code, signal) => {
        if (code === 0) resolve();
        else reject(new Error(`an extraction process ended with ${signal ?? `code ${code}`}`));
      });
    });
    this.exited.catch(() => undefined); // raced against each reply below
  }

  send(request: ExtractionProcessRequest): void {
    this.child.send(request);
  }

  /** Resolves with the message that `until` accepts; every message before it goes to `each`. */
  async receive<T extends ExtractionProcessMessage['kind']>(
    until: T,
    each: (message: ExtractionProcessMessage) => void = () => undefined,
  ): Promise<Extract<ExtractionProcessMessage, { kind: T }>> {
    let handler: ((message: ExtractionProcessMessage) => void) | undefined;
    const reply = new Promise<Extract<ExtractionProcessMessage, { kind: T }>>((resolve, reject) => {
      handler = (message) => {
        if (message.kind === 'error') reject(fromErrorMessage(message.error));
        else if (message.kind === until) resolve(message as Extract<ExtractionProcessMessage, { kind: T }>);
        else each(message);
      };
      this.handlers.add(handler);
    });
    try {
      return await Promise.race([
        reply,
        this.exited.then(() => Promise.reject(new Error('an extraction process ended before it answered'))),
      ]);
    } finally {
      this.handlers.delete(handler!);
    }
  }

  kill(): void {
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}

/**
 * extractFeatures in several processes, each with its own backbone and share of the missing shards, the
 * manifest published here once all are stored. For GPU execution providers: onnxruntime's WebGPU device is
 * one per process and runs one batch at a time, leaving the card idle while a batch is uploaded and read
 * back; three processes kept an H200 1.5x busier than one (bench/NOTES.md, extract). The shards and the
 * manifest are those one process stores, and a failure keeps the shards stored, as there.
 */
export async function extractFeaturesInProcesses(
  options: ProcessExtractionOptions,
): Promise<ExtractionResult> {
  const extractors = Array.from({ length: options.processes }, () => new ExtractionProcess());
  try {
    const dtype = options.dtype ?? 'float32';
    const threads = Math.max(
      1,
      Math.floor((options.preprocessThreads ?? DEFAULT_PREPROCESS_THREADS) / options.processes),
    );
    const infos = await Promise.all(
      extractors.map((extractor) => {
        extractor.send({
          kind: 'open',
          storeUrl: options.storeUrl,
          dataset: options.dataset,
          backbone: options.backbone,
          dtype,
          ...(options.batchSize ? { batchSize: options.batchSize } : {}),
          preprocessThreads: threads,
          skipUnreadable: options.skipUnreadable ?? false,
        });
        return extractor.receive('open');
      }),
    );
    // Shards dealt out in turn, so each process starts near the front and a resumed run fills in order.
    return await runExtraction(options, infos[0]!.info, (missing, reports) =>
      Promise.all(
        extractors.map((extractor, p) => {
          extractor.send({ kind: 'compute', shards: missing.filter((_, i) => i % extractors.length === p) });
          return extractor.receive('done', (message) => {
            if (message.kind === 'shard') reports.shard(message.index, message.entry);
            else if (message.kind === 'batch') void reports.batch(message.count);
          });
        }),
      ),
    );
  } finally {
    for (const extractor of extractors) extractor.kill();
  }
}
