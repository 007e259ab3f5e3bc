import * as tf from '@tensorflow/tfjs';
import { InputError } from '../util/errors';

/**
 * A named set of float32 tensors as one buffer: a 4-byte header length, a JSON header
 * (names, shapes, offsets and any extra metadata), then the raw little-endian float32 data.
 */
interface Header {
  tensors: { name: string; shape: number[]; offset: number; length: number }[];
  meta: unknown;
}

export async function encodeTensors(
  tensors: Record<string, tf.Tensor>,
  meta: unknown = null,
): Promise<Buffer> {
  const entries = Object.entries(tensors);
  let offset = 0;
  const header: Header = { tensors: [], meta };
  for (const [name, tensor] of entries) {
    header.tensors.push({ name, shape: tensor.shape, offset, length: tensor.size });
    offset += tensor.size;
  }
  const data = new Float32Array(offset);
  for (const [i, [, tensor]] of entries.entries()) {
    data.set((await tensor.data()) as Float32Array, header.tensors[i]!.offset);
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32LE(json.length);
  const padding = Buffer.alloc((4 - ((4 + json.length) % 4)) % 4);
  return Buffer.concat([length, json, padding, Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
}

/**
 * The tensors and meta of a file encodeTensors wrote; `source` names the file in the InputError a damaged one
 * (cut short, overwritten) gives, since such a file is computed anew only once it is deleted.
 */
export function decodeTensors(
  buffer: Buffer,
  source: string,
): { tensors: Record<string, tf.Tensor>; meta: unknown } {
  const damaged = (why: string) =>
    new InputError(`${source}: damaged tensor file (${why}): delete it and run again to compute it anew`);
  const jsonLength = buffer.length >= 4 ? buffer.readUInt32LE(0) : Number.POSITIVE_INFINITY;
  if (4 + jsonLength > buffer.length) throw damaged(`${buffer.length} bytes, too short for its header`);
  let header: Header;
  try {
    header = JSON.parse(buffer.subarray(4, 4 + jsonLength).toString('utf8')) as Header;
  } catch (error) {
    throw damaged(`header: ${(error as Error).message}`);
  }
  const start = 4 + jsonLength + ((4 - ((4 + jsonLength) % 4)) % 4);
  const values = Math.floor((buffer.length - start) / 4);
  const needed = Math.max(0, ...header.tensors.map((entry) => entry.offset + entry.length));
  if (values < needed) throw damaged(`${values} values where its header lists ${needed}`);
  const data = new Float32Array(
    buffer.buffer.slice(buffer.byteOffset + start, buffer.byteOffset + start + 4 * values),
  );
  const tensors: Record<string, tf.Tensor> = {};
  for (const entry of header.tensors) {
    tensors[entry.name] = tf.tensor(data.subarray(entry.offset, entry.offset + entry.length), entry.shape);
  }
  return { tensors, meta: header.meta };
}
