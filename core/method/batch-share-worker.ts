/** Thread side of BatchShareThread (batch-share-thread.ts): one share's forward pass, then its gradient. */
import { parentPort } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../tf/backend';
import { toErrorMessage } from '../util/errors';
import { type ShareForward, shareForward, shareGradient } from './batch-share';
import type { BatchShareReply, BatchShareRequest } from './batch-share-thread';

const port = parentPort!;
const ready = selectBackend('wasm');
let kept: { forward: ShareForward; channels: number } | undefined;

port.on('message', async (request: BatchShareRequest) => {
  try {
    await ready;
    if (request.kind === 'forward') {
      const u = tf.tensor2d(request.rotation, [request.shape.channels, request.shape.channels]);
      const forward = shareForward(u, request.maps, request.shape, request.atBase);
      u.dispose();
      kept = { forward, channels: request.shape.channels };
      port.postMessage({ kind: 'pooled', pooled: forward.pooled } satisfies BatchShareReply);
    } else {
      if (!kept) throw new Error('a gradient was asked before any forward pass');
      const sums = shareGradient(kept.forward, request.gradPooled, kept.channels);
      kept = undefined;
      port.postMessage({ kind: 'sums', sums } satisfies BatchShareReply, [sums.buffer as ArrayBuffer]);
    }
  } catch (error) {
    port.postMessage({ kind: 'error', error: toErrorMessage(error) } satisfies BatchShareReply);
  }
});
