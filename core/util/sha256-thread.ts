import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { WorkerClient } from './worker-client';

export type Sha256Request =
  | { kind: 'update'; id: number; memory: SharedArrayBuffer; start: number; end: number }
  | { kind: 'digest'; id: number };

/**
 * SHA-256 digests computed in a thread of their own, of bytes in shared memory, fed in order as they are
 * written. An extraction fills ~25 MB of a shard per batch of 64 ResNet-50 maps; hashing them on its main
 * thread took 14 ms of each batch, which at 2,000 images/s has 32 ms in all (bench/NOTES.md).
 */
export class Sha256Thread {
  private constructor(private readonly client: WorkerClient<Sha256Request, string | null>) {}

  static start(): Sha256Thread {
    return new Sha256Thread(
      new WorkerClient(new Worker(path.join(__dirname, 'sha256-thread-worker.js')), 'SHA-256'),
    );
  }

  /** Adds bytes [start, end) of `memory` to digest `id` (begun by its first update); they must not change after. */
  update(id: number, memory: SharedArrayBuffer, start: number, end: number): void {
    // A failure is the digest's to report (the thread remembers it).
    this.client.request({ kind: 'update', id, memory, start, end }).catch(() => undefined);
  }

  /** The hex digest of what `id` was fed, once the updates sent before it are in. */
  async digest(id: number): Promise<string> {
    return (await this.client.request({ kind: 'digest', id }))!;
  }

  close(): void {
    this.client.close(new Error('the SHA-256 thread is closed'));
  }
}
