import { parentPort, type Transferable, type Worker } from 'node:worker_threads';
import { type ErrorMessage, fromErrorMessage, toErrorMessage } from './errors';

type Envelope<T> = { id: number; reply: T } | { id: number; error: ErrorMessage };

/**
 * Requests to one worker thread (served by `serveRequests`), each answered by id. The thread holds the
 * process open only while a request is in flight; if it fails or exits, every request, pending or later,
 * fails with the reason. Errors keep their kind (an InputError stays one).
 */
export class WorkerClient<Request, Reply> {
  private readonly pending = new Map<
    number,
    { resolve: (reply: Reply) => void; reject: (error: Error) => void }
  >();
  private nextId = 0;
  private failure: Error | undefined;
  /** Requests the thread has not answered yet, including those already failed here by a close. */
  private unanswered = 0;
  private terminateWhenIdle = false;

  constructor(
    private readonly worker: Worker,
    name: string,
  ) {
    worker.unref();
    worker.on('message', (envelope: Envelope<Reply>) => {
      this.unanswered--;
      if (this.unanswered === 0) {
        worker.unref();
        if (this.terminateWhenIdle) void worker.terminate();
      }
      const request = this.pending.get(envelope.id);
      if (!request) return;
      this.pending.delete(envelope.id);
      if ('error' in envelope) request.reject(fromErrorMessage(envelope.error));
      else request.resolve(envelope.reply);
    });
    worker.on('error', (error) => this.fail(new Error(`${name} thread failed: ${error.message}`)));
    worker.on('exit', (code) => this.fail(new Error(`${name} thread exited with code ${code}`)));
  }

  request(message: Request, transfer: Transferable[] = []): Promise<Reply> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<Reply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.unanswered++;
      this.worker.ref();
      this.worker.postMessage({ id, message }, transfer);
    });
  }

  /** Requests sent and not yet answered. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Whether the thread has failed, exited or been closed: no request will be answered. */
  get closed(): boolean {
    return this.failure !== undefined;
  }

  /**
   * Fails what is pending and later requests with `reason`, and ends the thread once it has answered what it
   * was sent: a thread ended inside a native call (an onnxruntime batch) aborts the whole process when that
   * call returns.
   */
  close(reason: Error): void {
    this.fail(reason);
    if (this.unanswered === 0) void this.worker.terminate();
    else this.terminateWhenIdle = true;
  }

  private fail(reason: Error): void {
    this.failure ??= reason;
    for (const request of this.pending.values()) request.reject(this.failure);
    this.pending.clear();
  }
}

/** Worker side of WorkerClient: answers each request with `handle`'s reply (moving `transfer`) or its error. */
export function serveRequests<Request, Reply>(
  handle: (request: Request) => Promise<{ reply: Reply; transfer?: Transferable[] }>,
): void {
  const port = parentPort!;
  port.on('message', async ({ id, message }: { id: number; message: Request }) => {
    try {
      const { reply, transfer } = await handle(message);
      port.postMessage({ id, reply } satisfies Envelope<Reply>, transfer ?? []);
    } catch (error) {
      port.postMessage({ id, error: toErrorMessage(error) } satisfies Envelope<Reply>);
    }
  });
}
