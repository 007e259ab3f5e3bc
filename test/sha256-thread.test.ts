import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { Sha256Thread } from '../core/util/sha256-thread';

test('digests of shared memory fed in pieces, two at once, equal SHA-256 of the whole; a bad range fails its digest', async () => {
  const hasher = Sha256Thread.start();
  try {
    const shards = [3_000_001, 1_048_576].map((length) => {
      const memory = new SharedArrayBuffer(length);
      randomBytes(length).copy(Buffer.from(memory));
      return memory;
    });
    // Interleaved, in uneven pieces, as batches fill two shards across a boundary.
    const cuts = [0, 1, 65_537, 1_000_000, 2_999_999, 3_000_001];
    for (let i = 1; i < cuts.length; i++) {
      hasher.update(0, shards[0]!, cuts[i - 1]!, cuts[i]!);
      if (i === 2) hasher.update(1, shards[1]!, 0, 524_288);
    }
    hasher.update(1, shards[1]!, 524_288, 1_048_576);
    const expected = shards.map((memory) =>
      createHash('sha256').update(new Uint8Array(memory)).digest('hex'),
    );
    assert.deepEqual(await Promise.all([hasher.digest(1), hasher.digest(0)]), [expected[1], expected[0]]);

    hasher.update(2, shards[1]!, 0, 2_000_000);
    await assert.rejects(hasher.digest(2), /Invalid typed array length/);
    await assert.rejects(hasher.digest(3), /digest 3 was never fed/);
  } finally {
    hasher.close();
  }
});
