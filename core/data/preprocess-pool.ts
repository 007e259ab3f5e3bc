import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { ImageDecodeError, PRESETS, type PresetName } from './preprocess';

export interface PreprocessRequest {
  id: number;
  files: readonly string[];
  preset: PresetName;
}

export type PreprocessReply =
  | { id: number; data: Float32Array }
  | { id: number; error: { message: string; file?: string; reason?: string } };

interface Pending {
  resolve: (data: Float32Array) => void;
  reject: (error: Error) => void;
}

/**
 * Decodes and preprocesses batches of images (core/data/preprocess.ts) in worker threads. onnxruntime's
 * run() and tfjs' predict block the thread that calls them; with the preprocessing here, the next batch
 * is prepared while the backbone computes the current one.
 */
export class PreprocessPool {
  private readonly pending: Map<number, Pending>[];
  private nextId = 0;

  private constructor(private readonly workers: Worker[]) {
    this.pending = workers.map(() => new Map());
    workers.forEach((worker, w) => {
      const queue = this.pending[w]!;
      worker.on('message', (reply: PreprocessReply) => {
        const request = queue.get(reply.id)!;
        queue.delete(reply.id);
        if ('data' in reply) request.resolve(reply.data);
        else {
          const { message, file, reason } = reply.error;
          request.reject(
            file !== undefined && reason !== undefined
              ? new ImageDecodeError(file, reason)
              : new Error(message),
          );
        }
      });
      const failAll = (error: Error) => {
        for (const request of queue.values()) request.reject(error);
        queue.clear();
      };
      worker.on('error', (error) =>
        failAll(new Error(`image preprocessing thread failed: ${error.message}`)),
      );
      worker.on('exit', (code) => failAll(new Error(`image preprocessing thread exited with code ${code}`)));
    });
  }

  /** `size` worker threads (at least one). */
  static start(size: number): PreprocessPool {
    const script = path.join(__dirname, 'preprocess-worker.js');
    return new PreprocessPool(Array.from({ length: Math.max(1, size) }, () => new Worker(script)));
  }

  /**
   * The images of `files` prepared with `preset`, NHWC in one buffer; a bad file fails it with its name.
   * The batch is split over the threads.
   */
  async prepare(files: readonly string[], preset: PresetName): Promise<Float32Array> {
    const chunk = Math.ceil(files.length / this.workers.length);
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
  private request(files: readonly string[], preset: PresetName): Promise<Float32Array> {
    let w = 0;
    for (let i = 1; i < this.workers.length; i++) if (this.pending[i]!.size < this.pending[w]!.size) w = i;
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending[w]!.set(id, { resolve, reject });
      this.workers[w]!.postMessage({ id, files, preset } satisfies PreprocessRequest);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }
}
