import { createHash } from 'node:crypto';
import {
  AbortMultipartUploadCommand,
  type BucketLocationConstraint,
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  type ListPartsCommandOutput,
  PutObjectCommand,
  paginateListObjectsV2,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { sha256 } from '../util/hash';
import { plural } from '../util/plural';
import { type AbandonedWrite, type ArtifactStore, assertValidKey } from './artifact-store';

const MiB = 1024 * 1024;

// The SDK warns on every start under Node 20 that its releases after January 2027 will need Node 22. The lock
// file pins a release that supports Node 20, so the warning only hides a command's own output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** Object metadata entry (`x-amz-meta-sha256`) holding the hex SHA-256 of the content. */
export const SHA256_METADATA = 'sha256';

export interface S3StoreOptions {
  bucket: string;
  /** Key prefix inside the bucket ('' or e.g. 'team/run-7'); artifact keys are relative to it. */
  prefix?: string;
  /** e.g. 'http://127.0.0.1:8333' for SeaweedFS or MinIO; default: AWS S3. */
  endpoint?: string;
  /** Default: the AWS SDK's region chain (AWS_REGION, profile). */
  region?: string;
  /** Address buckets as endpoint/bucket instead of bucket.endpoint (needed by most self-hosted servers). */
  forcePathStyle?: boolean;
  /** Default: the standard AWS chain (environment, profile, SSO, instance/container roles). */
  credentials?: S3ClientConfig['credentials'];
  /** Attempts per request, retried with exponential backoff and jitter on transient errors. Default 5. */
  maxAttempts?: number;
  /** Objects of at least this many bytes are written with a multipart upload. Default 16 MiB. */
  multipartThreshold?: number;
  /** Multipart part size, at least 5 MiB. Default 8 MiB. */
  partSize?: number;
  /** Keys per ListObjectsV2 page (MaxKeys). Default 1000. */
  listPageSize?: number;
  /** Create the bucket when an operation finds it missing, instead of failing. */
  createBucket?: boolean;
  onUploadProgress?: (progress: { key: string; loaded: number; total: number }) => void;
}

/** The server refused the signature or the key: wrong or expired credentials, or a key without access. */
export class S3CredentialsError extends Error {
  override readonly name = 'S3CredentialsError';
}

export class S3BucketNotFoundError extends Error {
  override readonly name = 'S3BucketNotFoundError';
}

/** The bytes read back do not hash to the SHA-256 recorded when they were written. */
export class ArtifactIntegrityError extends Error {
  override readonly name = 'ArtifactIntegrityError';
  constructor(
    readonly key: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Artifacts as objects in one S3 bucket, under an optional prefix.
 *
 * Whole or not at all: S3 makes an object visible only when a PutObject or CompleteMultipartUpload
 * commits, and never shows a partially received body. So each put writes straight to the final key:
 * small objects in one PutObject carrying x-amz-checksum-sha256, which the server checks before it commits;
 * large ones as a multipart upload with a SHA-256 per part, aborted on any failure. A staging key plus
 * CopyObject would add nothing: the copy is again one atomic write, at twice the traffic, and a crash
 * between the steps strands staging objects.
 *
 * End to end: the SHA-256 of the whole content is kept in the object's metadata and checked on every get.
 *
 * Overwriting a key with the same bytes is harmless, so concurrent writers of content-addressed keys
 * need no coordination. Incomplete multipart uploads left by a crash are invisible but occupy space:
 * `infodisent store prune` aborts those over an hour old (abandonedWrites), as would an
 * AbortIncompleteMultipartUpload lifecycle rule on the bucket.
 */
export class S3ArtifactStore implements ArtifactStore {
  readonly location: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly client: S3Client;
  private readonly endpointLabel: string;
  private readonly multipartThreshold: number;
  private readonly partSize: number;
  private readonly listPageSize: number;
  private readonly createMissingBucket: boolean;
  private readonly onUploadProgress: S3StoreOptions['onUploadProgress'];
  private bucketSeen = false;

  constructor(options: S3StoreOptions) {
    this.bucket = options.bucket;
    this.prefix = (options.prefix ?? '').replace(/^\/+|\/+$/g, '');
    if (this.prefix) assertValidKey(this.prefix);
    this.location = `s3://${this.bucket}${this.prefix ? `/${this.prefix}` : ''}`;
    this.endpointLabel = options.endpoint ?? 'AWS S3';
    this.multipartThreshold = options.multipartThreshold ?? 16 * MiB;
    this.partSize = options.partSize ?? 8 * MiB;
    if (this.partSize < 5 * MiB) {
      throw new Error(`partSize ${this.partSize} is below the S3 minimum of 5 MiB`);
    }
    this.listPageSize = options.listPageSize ?? 1000;
    this.createMissingBucket = options.createBucket ?? false;
    this.onUploadProgress = options.onUploadProgress;
    this.client = new S3Client({
      endpoint: options.endpoint,
      region: options.region,
      forcePathStyle: options.forcePathStyle,
      credentials: options.credentials,
      maxAttempts: options.maxAttempts ?? 5,
      retryMode: 'standard',
      // get() hashes the whole body against the metadata; a second, SDK-side pass would be redundant.
      responseChecksumValidation: 'WHEN_REQUIRED',
      // By default a server that goes silent stalls a request forever; a timeout is transient and retried.
      requestHandler: { connectionTimeout: 10_000, socketTimeout: 120_000 },
    });
  }

  private objectKey(key: string): string {
    assertValidKey(key);
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  async get(key: string): Promise<Buffer | undefined> {
    const Key = this.objectKey(key);
    const object = await this.run('reading', key, async () => {
      try {
        const response = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key }));
        const body = Buffer.from(await response.Body!.transformToByteArray());
        return { body, sha256: response.Metadata?.[SHA256_METADATA] };
      } catch (error) {
        if (errorCode(error) === 'NoSuchKey') return undefined;
        throw error;
      }
    });
    if (object === undefined) return undefined;
    const where = `'${key}' in ${this.location}`;
    if (object.sha256 === undefined) {
      throw new ArtifactIntegrityError(
        key,
        `artifact ${where} has no ${SHA256_METADATA} metadata to verify it`,
      );
    }
    const actual = sha256(object.body);
    if (actual !== object.sha256) {
      throw new ArtifactIntegrityError(
        key,
        `artifact ${where} is corrupt: its ${object.body.length} bytes hash to ${actual}, ` +
          `but it was written with SHA-256 ${object.sha256}`,
      );
    }
    return object.body;
  }

  async put(key: string, data: Uint8Array, knownSha256?: string): Promise<void> {
    const Key = this.objectKey(key);
    // A single PutObject carries the digest, which the server checks; a multipart one is checked on read.
    const digest = knownSha256 ? Buffer.from(knownSha256, 'hex') : createHash('sha256').update(data).digest();
    const Metadata = { [SHA256_METADATA]: digest.toString('hex') };
    const total = data.byteLength;
    await this.run('writing', key, async () => {
      if (total < this.multipartThreshold) {
        await this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key,
            Body: data,
            Metadata,
            ChecksumSHA256: digest.toString('base64'),
          }),
        );
        this.onUploadProgress?.({ key, loaded: total, total });
        return;
      }
      const upload = new Upload({
        client: this.client,
        partSize: this.partSize,
        params: { Bucket: this.bucket, Key, Body: data, Metadata, ChecksumAlgorithm: 'SHA256' },
      });
      const onProgress = this.onUploadProgress;
      if (onProgress) {
        upload.on('httpUploadProgress', (p) => onProgress({ key, loaded: p.loaded ?? 0, total }));
      }
      await upload.done();
    });
  }

  async exists(key: string): Promise<boolean> {
    const Key = this.objectKey(key);
    return this.run('checking', key, async () => {
      try {
        await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }));
        return true;
      } catch (error) {
        if (httpStatus(error) !== 404) throw error;
      }
      // A HEAD reply has no body, so its 404 does not say whether the key or the whole bucket is missing.
      if (!this.bucketSeen && !(await this.bucketExists())) throw this.bucketMissing();
      return false;
    });
  }

  async list(prefix: string): Promise<string[]> {
    const base = this.prefix ? `${this.prefix}/` : '';
    return this.run('listing', prefix, async () => {
      const keys: string[] = [];
      const pages = paginateListObjectsV2(
        { client: this.client, pageSize: this.listPageSize },
        { Bucket: this.bucket, Prefix: base + prefix },
      );
      for await (const page of pages) {
        for (const object of page.Contents ?? []) {
          if (object.Key?.startsWith(base)) keys.push(object.Key.slice(base.length));
        }
      }
      return keys.sort();
    });
  }

  async delete(key: string): Promise<void> {
    const Key = this.objectKey(key);
    await this.run('deleting', key, () =>
      this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key })),
    );
  }

  /** Multipart uploads under the prefix started before `before` and never completed, with their parts' bytes. */
  async abandonedWrites(before: Date): Promise<AbandonedWrite[]> {
    const base = this.prefix ? `${this.prefix}/` : '';
    return this.run('listing unfinished uploads', base, async () => {
      const found: AbandonedWrite[] = [];
      let markers: { KeyMarker?: string; UploadIdMarker?: string } = {};
      for (;;) {
        const page = await this.client.send(
          new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: base, ...markers }),
        );
        for (const { Key, UploadId, Initiated } of page.Uploads ?? []) {
          if (!Key?.startsWith(base) || !UploadId || !Initiated || Initiated >= before) continue;
          const bytes = await this.uploadedBytes(Key, UploadId);
          if (bytes !== undefined)
            found.push({ key: Key.slice(base.length), id: UploadId, bytes, lastActivity: Initiated });
        }
        if (!page.IsTruncated) return found;
        markers = { KeyMarker: page.NextKeyMarker, UploadIdMarker: page.NextUploadIdMarker };
      }
    });
  }

  /** The bytes of an upload's parts; undefined where it completed or was aborted since it was listed. */
  private async uploadedBytes(Key: string, UploadId: string): Promise<number | undefined> {
    let bytes = 0;
    let PartNumberMarker: string | undefined;
    for (;;) {
      let page: ListPartsCommandOutput;
      try {
        page = await this.client.send(
          new ListPartsCommand({ Bucket: this.bucket, Key, UploadId, PartNumberMarker }),
        );
      } catch (error) {
        if (errorCode(error) === 'NoSuchUpload') return undefined;
        throw error;
      }
      for (const part of page.Parts ?? []) bytes += part.Size ?? 0;
      if (!page.IsTruncated) return bytes;
      PartNumberMarker = page.NextPartNumberMarker;
    }
  }

  /** Aborts the upload: S3 then frees its parts. */
  async discardAbandonedWrite(write: AbandonedWrite): Promise<void> {
    const Key = this.objectKey(write.key);
    await this.run('aborting the unfinished upload of', write.key, () =>
      this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId: write.id })),
    );
  }

  /** Creates the bucket; succeeds if this account already owns it. */
  async createBucket(): Promise<void> {
    try {
      const region = await this.client.config.region();
      await this.client.send(
        new CreateBucketCommand({
          Bucket: this.bucket,
          // us-east-1 is the one region that rejects an explicit location constraint.
          ...(region && region !== 'us-east-1'
            ? { CreateBucketConfiguration: { LocationConstraint: region as BucketLocationConstraint } }
            : {}),
        }),
      );
    } catch (error) {
      if (errorCode(error) !== 'BucketAlreadyOwnedByYou') {
        throw await this.explain(error, 'creating the bucket');
      }
    }
    this.bucketSeen = true;
  }

  private async bucketExists(): Promise<boolean> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return true;
    } catch (error) {
      if (httpStatus(error) === 404) return false;
      throw error;
    }
  }

  /** Runs one store operation: creates a missing bucket if asked to, and turns failures into clear errors. */
  private async run<T>(action: string, key: string, operation: () => Promise<T>): Promise<T> {
    for (let created = false; ; created = true) {
      try {
        const result = await operation();
        this.bucketSeen = true;
        return result;
      } catch (error) {
        const bucketMissing = error instanceof S3BucketNotFoundError || errorCode(error) === 'NoSuchBucket';
        if (bucketMissing && this.createMissingBucket && !created) {
          await this.createBucket();
          continue;
        }
        throw await this.explain(error, action, key);
      }
    }
  }

  private bucketMissing(cause?: unknown): S3BucketNotFoundError {
    return new S3BucketNotFoundError(
      `S3 bucket '${this.bucket}' does not exist at ${this.endpointLabel}: create it ` +
        '(`infodisent worker --create-bucket` does as it starts; in code, S3ArtifactStore.createBucket() ' +
        'or opening the store with { createBucket: true })',
      { cause },
    );
  }

  /** Never includes the secret key: only the access key ID, which identifies the credentials. */
  private async explain(error: unknown, action: string, key?: string): Promise<Error> {
    if (
      error instanceof S3BucketNotFoundError ||
      error instanceof S3CredentialsError ||
      error instanceof ArtifactIntegrityError
    ) {
      return error;
    }
    const code = errorCode(error);
    const what = key === undefined ? action : `${action} '${key}'`;
    if (code === 'NoSuchBucket') return this.bucketMissing(error);
    if (httpStatus(error) === 403 || CREDENTIAL_CODES.has(code)) {
      const accessKeyId = await this.client.config.credentials().then(
        (c) => c.accessKeyId,
        () => undefined,
      );
      // A HEAD reply has no body, so the SDK reports its 403 as 'Unknown'.
      const reason = code && code !== 'Unknown' ? code : 'HTTP 403';
      const detail =
        code === 'AccessDenied'
          ? 'they are valid but not allowed to do this on the bucket'
          : 'check the access key ID and secret (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or the AWS profile)';
      return new S3CredentialsError(
        `S3 credentials${accessKeyId ? ` (access key ID ${accessKeyId})` : ''} were rejected by ` +
          `${this.endpointLabel} for bucket '${this.bucket}' while ${what} (${reason}): ${detail}`,
        { cause: error },
      );
    }
    const attempts = (error as { $metadata?: { attempts?: number } } | undefined)?.$metadata?.attempts;
    const message = error instanceof Error ? error.message || code : String(error);
    return new Error(
      `S3 ${what} in ${this.location} at ${this.endpointLabel} failed` +
        `${attempts ? ` after ${plural(attempts, 'attempt')}` : ''}: ${message}`,
      { cause: error },
    );
  }
}

const CREDENTIAL_CODES = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'AccessDenied',
  'InvalidToken',
  'ExpiredToken',
]);

/** The S3 error code (the SDK puts it in `name`), or a Node network error code such as ECONNREFUSED. */
function errorCode(error: unknown): string {
  const { name, code } = (error ?? {}) as { name?: unknown; code?: unknown };
  if (typeof code === 'string') return code;
  return typeof name === 'string' && name !== 'Error' ? name : '';
}

function httpStatus(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}
