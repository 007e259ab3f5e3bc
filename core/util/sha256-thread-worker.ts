/** Thread side of Sha256Thread (sha256-thread.ts): one running hash per id, in the order the updates come. */
import { createHash, type Hash } from 'node:crypto';
import type { Sha256Request } from './sha256-thread';
import { serveRequests } from './worker-client';

const hashes = new Map<number, Hash>();
const failures = new Map<number, unknown>();

serveRequests<Sha256Request, string | null>(async (request) => {
  const { id } = request;
  if (request.kind === 'update') {
    try {
      const hash = hashes.get(id) ?? createHash('sha256');
      hashes.set(id, hash);
      hash.update(new Uint8Array(request.memory, request.start, request.end - request.start));
    } catch (error) {
      failures.set(id, error);
      throw error;
    }
    return { reply: null };
  }
  const failure = failures.get(id);
  const hash = hashes.get(id);
  failures.delete(id);
  hashes.delete(id);
  if (failure !== undefined) throw failure;
  if (!hash) throw new Error(`digest ${id} was never fed`);
  return { reply: hash.digest('hex') };
});
