import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { WorkerClient } from '../util/worker-client';
import { ImageDecodeError, PRESETS, type PresetName } from './preprocess';

export interface PreprocessRequest {
  files: readonly string[];
  preset: PresetName;
}

/** The batch in one NHWC buffer, or the file that could not be decoded (an ImageDecodeError again here). */
export type PreprocessReply = { data: Float32Array } | { decodeError: { file: string; reason: string } };

/**
 * Decodes and preprocesses batches of images (core/data/preprocess.ts) in worker threads. onnxruntime's
 * run() and tfjs' predict block the thread that calls them; with the preprocessing here, the next batch
 * is prepared while the backbone computes the current one.
 */
export class PreprocessPool {
  private constructor(private readonly threads: WorkerClient<PreprocessRequest, PreprocessReply>[]) {}

  /** `size` worker threads (at least one). */
  static start(size: number): PreprocessPool {
    const script = path.join(__dirname, 'preprocess-worker.js');
    return new PreprocessPool(
      Array.from(
        { length: Math.max(1, size) },
        () => new WorkerClient<PreprocessRequest, PreprocessReply>(new Worker(script), 'image preprocessing'),
      ),
    );
  }

  /**
   * The images of `files` prepared with `preset`, NHWC in one buffer; a bad file fails it with its name.
   * The batch is split over the threads.
   */
  async prepare(files: readonly string[], preset: PresetName): Promise<Float32Array> {
    const chunk = Math.ceil(files.length / this.threads.length);
    if (chunk === files.length) return this.request(files, preset);
    const pixels = PRESETS[preset].cropSize ** 2 * 3;
    const out = new Float32Array(files.length * pixels);
    const parts: Promise<void>[] = [];
    for (let start = 0; start < files.length; start += chunk)
      parts.push(
        this.request(files.slice(start, start + chunk), preset).then((data) => out.set(data, start * pixels)),
      );
    await Promise.all(parts);
    return out;
  }

  /** Sends one request to the least busy thread. */
  private async request(files: readonly string[], preset: PresetName): Promise<Float32Array> {
    const thread = this.threads.reduce((best, candidate) =>
      candidate.inFlight < best.inFlight ? candidate : best,
    );
    const reply = await thread.request({ files, preset });
    if ('decodeError' in reply) throw new ImageDecodeError(reply.decodeError.file, reply.decodeError.reason);
    return reply.data;
  }

  async close(): Promise<void> {
    for (const thread of this.threads) thread.close(new Error('the image preprocessing pool is closed'));
  }
}
