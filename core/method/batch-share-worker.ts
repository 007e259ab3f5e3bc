/** Thread side of BatchShareThread (batch-share-thread.ts): one share's forward pass, then its gradient. */
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../tf/backend';
import { serveRequests } from '../util/worker-client';
import { type ShareForward, shareForward, shareGradient } from './batch-share';
import type { BatchShareReply, BatchShareRequest } from './batch-share-thread';

const ready = selectBackend('wasm');
let kept: { forward: ShareForward; channels: number } | undefined;

serveRequests<BatchShareRequest, BatchShareReply>(async (request) => {
  await ready;
  if (request.kind === 'forward') {
    const u = tf.tensor2d(request.rotation, [request.shape.channels, request.shape.channels]);
    const forward = shareForward(u, request.maps, request.shape, request.atBase);
    u.dispose();
    kept = { forward, channels: request.shape.channels };
    return { reply: forward.pooled };
  }
  if (!kept) throw new Error('a gradient was asked before any forward pass');
  const sums = shareGradient(kept.forward, request.gradPooled, kept.channels);
  kept = undefined;
  return { reply: sums, transfer: [sums.buffer as ArrayBuffer] };
});
