import { InputError } from '../util/errors';

/**
 * One interface for every place artifacts live. Keys are '/'-separated relative paths.
 * Implementations publish each object whole or not at all: a reader never sees a partial write.
 */
export interface ArtifactStore {
  /** Human-readable location, for logs and results ("file:///…", "s3://bucket/prefix"). */
  readonly location: string;
  get(key: string): Promise<Buffer | undefined>;
  /**
   * Stores `data` whole under `key`; once it settles the caller may write over `data` (an extraction
   * fills the next shard into it), so a store keeps no reference to it. `sha256`: its hex SHA-256 when the
   * caller has it already (an extraction hashes each shard as it fills it), so that a store which records
   * or checks digests (S3) need not hash the bytes again.
   */
  put(key: string, data: Uint8Array, sha256?: string): Promise<void>;
  exists(key: string): Promise<boolean>;
  /** Keys under a prefix, sorted. */
  list(prefix: string): Promise<string[]>;
  delete(key: string): Promise<void>;
  /** Unfinished writes last active before `before` (a writer killed midway left them), by key. */
  abandonedWrites(before: Date): Promise<AbandonedWrite[]>;
  discardAbandonedWrite(write: AbandonedWrite): Promise<void>;
}

/**
 * A put that never finished: invisible to get and list, yet taking space. On a local store, a temporary file
 * never renamed; on S3, a multipart upload never completed.
 */
export interface AbandonedWrite {
  /** The artifact it was writing. */
  key: string;
  /** The store's handle on it: the temporary file's path in the store, the upload's id. */
  id: string;
  bytes: number;
  /** Its last sign of progress: the temporary file's last change, the upload's start. */
  lastActivity: Date;
}

export class ArtifactNotFoundError extends Error {
  constructor(
    readonly key: string,
    location: string,
  ) {
    super(`artifact '${key}' not found in ${location}`);
    this.name = 'ArtifactNotFoundError';
  }
}

export async function getRequired(store: ArtifactStore, key: string): Promise<Buffer> {
  const data = await store.get(key);
  if (data === undefined) throw new ArtifactNotFoundError(key, store.location);
  return data;
}

/** The JSON stored at `key`; a damaged file (cut short, overwritten) is an InputError naming it. */
export async function getJson<T>(store: ArtifactStore, key: string): Promise<T | undefined> {
  const data = await store.get(key);
  if (data === undefined) return undefined;
  try {
    return JSON.parse(data.toString('utf8')) as T;
  } catch (error) {
    throw new InputError(
      `${store.location}/${key}: not valid JSON (${(error as Error).message}): delete it and run again to compute it anew`,
    );
  }
}

export async function putJson(store: ArtifactStore, key: string, value: unknown): Promise<void> {
  await store.put(key, Buffer.from(`${JSON.stringify(value, null, 2)}\n`, 'utf8'));
}

export function assertValidKey(key: string): void {
  if (
    key.length === 0 ||
    key.startsWith('/') ||
    key.split('/').some((part) => part === '' || part === '..')
  ) {
    throw new Error(`invalid artifact key '${key}': use a relative '/'-separated path without '..'`);
  }
}
