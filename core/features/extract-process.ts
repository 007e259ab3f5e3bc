/**
 * One process of extractFeaturesInProcesses (extract-processes.ts): opens the backbone in a thread of its
 * own, reports what it is, then computes the shards it is given into the store and ends.
 */
import type { Backbone } from '../backbones/backbone';
import { backboneInfo, openBackboneInThread } from '../backbones/backbone-thread';
import { openStore } from '../store/open-store';
import { toErrorMessage } from '../util/errors';
import type { ExtractionProcessMessage, ExtractionProcessRequest } from './extract-processes';
import { computeShards } from './feature-store';

const send = (message: ExtractionProcessMessage) => {
  process.send!(message);
};

/** The last message, then the end: the store's client may hold sockets open, which must not keep it alive. */
const finish = (message: ExtractionProcessMessage, code: number) =>
  process.send!(message, undefined, {}, () => process.exit(code));

let opened: { request: Extract<ExtractionProcessRequest, { kind: 'open' }>; backbone: Backbone } | undefined;

async function handle(request: ExtractionProcessRequest): Promise<void> {
  if (request.kind === 'open') {
    const backbone = await openBackboneInThread(request.backbone);
    opened = { request, backbone };
    send({ kind: 'open', info: backboneInfo(backbone) });
    return;
  }
  if (!opened) throw new Error('shards were sent before the backbone was open');
  const { request: open, backbone } = opened;
  await computeShards({
    store: openStore(open.storeUrl),
    dataset: open.dataset,
    backbone,
    dtype: open.dtype,
    preprocessThreads: open.preprocessThreads,
    skipUnreadable: open.skipUnreadable,
    ...(open.batchSize ? { batchSize: open.batchSize } : {}),
    shards: request.shards,
    onBatch: (count) => send({ kind: 'batch', count }),
    onShard: (index, entry) => send({ kind: 'shard', index, entry }),
  });
  backbone.dispose();
  finish({ kind: 'done' }, 0);
}

// The parent is gone (its stage thread ended, failed or was cancelled): stop, as the parent would.
process.on('disconnect', () => process.exit(1));

process.on('message', (request: ExtractionProcessRequest) => {
  handle(request).catch((error: unknown) => finish({ kind: 'error', error: toErrorMessage(error) }, 1));
});
