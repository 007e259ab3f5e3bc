import * as tf from '@tensorflow/tfjs';

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

export function decodeTensors(buffer: Buffer): { tensors: Record<string, tf.Tensor>; meta: unknown } {
  const jsonLength = buffer.readUInt32LE(0);
  const header = JSON.parse(buffer.subarray(4, 4 + jsonLength).toString('utf8')) as Header;
  const start = 4 + jsonLength + ((4 - ((4 + jsonLength) % 4)) % 4);
  const data = new Float32Array(
    buffer.buffer.slice(buffer.byteOffset + start, buffer.byteOffset + buffer.length),
  );
  const tensors: Record<string, tf.Tensor> = {};
  for (const entry of header.tensors) {
    tensors[entry.name] = tf.tensor(data.subarray(entry.offset, entry.offset + entry.length), entry.shape);
  }
  return { tensors, meta: header.meta };
}
