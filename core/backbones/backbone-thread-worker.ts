/** Thread side of openBackboneInThread (backbone-thread.ts): opens the backbone, then runs one batch per message. */
import { parentPort, workerData } from 'node:worker_threads';
import { toErrorMessage } from '../util/errors';
import type { BackboneThreadReply, BackboneThreadRequest } from './backbone-thread';
import { type BackboneSpec, openBackbone } from './registry';

const port = parentPort!;
const reply = (message: BackboneThreadReply, transfer: ArrayBuffer[] = []) =>
  port.postMessage(message, transfer);

// Through a promise: openBackbone also throws synchronously (an unknown name).
Promise.resolve((workerData as { spec: BackboneSpec }).spec)
  .then(openBackbone)
  .then(
    (backbone) => {
      const { extract: _extract, dispose: _dispose, ...info } = backbone;
      reply({ kind: 'ready', info });
      port.on('message', async ({ id, images, n }: BackboneThreadRequest) => {
        try {
          const features = await backbone.extract(images, n);
          const { buffer, byteOffset, length } = features;
          reply({ kind: 'features', id, buffer: buffer as ArrayBuffer, byteOffset, length }, [
            buffer as ArrayBuffer,
          ]);
        } catch (error) {
          reply({ kind: 'error', id, error: toErrorMessage(error) });
        }
      });
    },
    (error: unknown) => reply({ kind: 'failed', error: toErrorMessage(error) }),
  );
