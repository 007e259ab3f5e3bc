import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { WorkerClient } from '../util/worker-client';
import { ImageDecodeError, PRESETS, type PresetName } from './preprocess';

/** What a batch holds: normalised float32 values, or the crops' uint8 pixels before normalisation. */
export type BatchFormat = 'float32' | 'pixels';

export interface PreprocessRequest {
  files: readonly string[];
  preset: PresetName;
  format: BatchFormat;
  /** The batch's buffer, NHWC, shared with the pool: the thread writes its images there from `first` on. */
  batch: SharedArrayBuffer;
  first: number;
}

/** An image of a batch that could not be decoded: its index in the batch, file and the decoder's reason. */
export interface UnreadableImage {
  index: number;
  file: string;
  reason: string;
}

/** The files of the request that could not be decoded (none when all were prepared). */
export interface PreprocessReply {
  unreadable: UnreadableImage[];
}

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
   * The images of `files` prepared with `preset`, NHWC in one buffer. A file that cannot be decoded fails it
   * with its name (an ImageDecodeError), unless `unreadable` is given: then each such file is added to it and
   * its image left zero. The batch is split over the threads, which write straight into one shared buffer:
   * at a GPU's rate (a 64-image batch every ~30 ms) a copy of each part here would hold this thread for
   * milliseconds.
   */
  prepare(
    files: readonly string[],
    preset: PresetName,
    unreadable?: UnreadableImage[],
  ): Promise<Float32Array> {
    return this.fill(files, preset, 'float32', unreadable).then((batch) => new Float32Array(batch));
  }

  /** The crops of `files` before normalisation, uint8 NHWC in one buffer (`cropPixels`), as `prepare` splits them. */
  preparePixels(
    files: readonly string[],
    preset: PresetName,
    unreadable?: UnreadableImage[],
  ): Promise<Uint8Array> {
    return this.fill(files, preset, 'pixels', unreadable).then((batch) => new Uint8Array(batch));
  }

  private async fill(
    files: readonly string[],
    preset: PresetName,
    format: BatchFormat,
    unreadable: UnreadableImage[] | undefined,
  ): Promise<SharedArrayBuffer> {
    const values = files.length * PRESETS[preset].cropSize ** 2 * 3;
    const batch = new SharedArrayBuffer(values * (format === 'pixels' ? 1 : Float32Array.BYTES_PER_ELEMENT));
    const chunk = Math.ceil(files.length / this.threads.length);
    const parts: Promise<PreprocessReply>[] = [];
    for (let first = 0; first < files.length; first += chunk)
      parts.push(this.request({ files: files.slice(first, first + chunk), preset, format, batch, first }));
    const failed = (await Promise.all(parts))
      .flatMap((reply) => reply.unreadable)
      .sort((a, b) => a.index - b.index);
    if (failed.length > 0 && !unreadable) throw new ImageDecodeError(failed[0]!.file, failed[0]!.reason);
    unreadable?.push(...failed);
    return batch;
  }

  /** Sends one request to the least busy thread. */
  private request(request: PreprocessRequest): Promise<PreprocessReply> {
    const thread = this.threads.reduce((best, candidate) =>
      candidate.inFlight < best.inFlight ? candidate : best,
    );
    return thread.request(request);
  }

  async close(): Promise<void> {
    for (const thread of this.threads) thread.close(new Error('the image preprocessing pool is closed'));
  }
}
