/** Thread side of openBackboneInThread (backbone-thread.ts): opens the backbone, then runs one batch per request. */
import { serveRequests } from '../util/worker-client';
import type { Backbone } from './backbone';
import { type BackboneThreadReply, type BackboneThreadRequest, backboneInfo } from './backbone-thread';
import { openBackbone } from './registry';

let backbone: Backbone | undefined;

serveRequests<BackboneThreadRequest, BackboneThreadReply>(async (request) => {
  if (request.kind === 'open') {
    backbone = await openBackbone(request.spec);
    return { reply: backboneInfo(backbone) };
  }
  if (!backbone) throw new Error('a batch was sent before the backbone was open');
  const { images, n } = request;
  const features =
    images instanceof Uint8Array
      ? await backbone.extractPixels!(images, n)
      : await backbone.extract(images, n);
  // The features are this thread's own (a fresh array per batch): they move, not copied.
  return { reply: features, transfer: [features.buffer as ArrayBuffer] };
});
