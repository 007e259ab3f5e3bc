import { fileURLToPath } from 'node:url';
import type { ArtifactStore } from './artifact-store';
import { LocalArtifactStore } from './local-store';
import type { S3ArtifactStore, S3StoreOptions } from './s3-store';

/** Settings for s3:// stores; ignored for local ones. Explicit options win over the URL, which wins over the environment. */
export type OpenStoreOptions = Omit<S3StoreOptions, 'bucket' | 'prefix'>;

/**
 * Opens the store a URL names:
 * - `file:///abs/path` or a plain path: a folder on this machine;
 * - `s3://bucket/prefix[?endpoint=http://host:port&region=…&forcePathStyle=true|false]`: S3 or an S3-compatible
 *   server. Without an endpoint option or parameter, AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL applies, else AWS S3.
 *   A custom endpoint implies path-style addressing and, without AWS_REGION / AWS_DEFAULT_REGION, us-east-1.
 *   Credentials come from `options.credentials` or the standard AWS chain.
 */
export function openStore(url: string, options: OpenStoreOptions = {}): ArtifactStore {
  if (url.startsWith('s3://')) return openS3Store(url, options);
  if (url.startsWith('file:')) return new LocalArtifactStore(fileURLToPath(url));
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    throw new Error(`unsupported store URL '${url}': use file:///path, a plain path, or s3://bucket/prefix`);
  }
  return new LocalArtifactStore(url);
}

function openS3Store(url: string, options: OpenStoreOptions): S3ArtifactStore {
  const parsed = new URL(url);
  const bucket = parsed.hostname;
  if (!bucket) throw new Error(`store URL '${url}' names no bucket: use s3://bucket/prefix`);
  const param = (name: string) => parsed.searchParams.get(name) ?? undefined;
  const env = process.env;
  const endpoint =
    options.endpoint ?? param('endpoint') ?? env['AWS_ENDPOINT_URL_S3'] ?? env['AWS_ENDPOINT_URL'];
  const forcePathStyleParam = param('forcePathStyle');
  const region =
    options.region ??
    param('region') ??
    (endpoint !== undefined && !env['AWS_REGION'] && !env['AWS_DEFAULT_REGION'] ? 'us-east-1' : undefined);
  // Loaded only for an s3:// URL: processes on local stores (a GPU machine's extraction processes, packed
  // without the AWS SDK by bench/gpu-pack.sh) need not load it.
  const { S3ArtifactStore: Store } = require('./s3-store') as typeof import('./s3-store');
  return new Store({
    ...options,
    bucket,
    prefix: decodeURIComponent(parsed.pathname),
    endpoint,
    region,
    forcePathStyle:
      options.forcePathStyle ??
      (forcePathStyleParam === undefined ? endpoint !== undefined : forcePathStyleParam === 'true'),
  });
}
