/**
 * Reader for MATLAB Level 5 MAT-files (MATLAB's -v6 and default -v7 formats, the format of the Stanford
 * Cars/Dogs annotations and the ImageNet devkit's meta.mat), after MathWorks' "MAT-File Format" document.
 * Reads numeric, logical, char, cell and struct arrays, zlib-compressed or not, either byte order;
 * other classes (sparse, objects) come back as 'unsupported'. -v7.3 files are HDF5 and are rejected.
 */
import { readFile } from 'node:fs/promises';
import { inflateSync } from 'node:zlib';
import { DatasetInputError } from './common';

export type MatValue =
  | { type: 'numeric'; dims: number[]; data: Float64Array }
  | { type: 'char'; dims: number[]; text: string }
  | { type: 'cell'; dims: number[]; cells: MatValue[] }
  | { type: 'struct'; dims: number[]; fields: string[]; elements: Map<string, MatValue>[] }
  | { type: 'unsupported'; dims: number[]; mxClass: number };

// Data element types (miINT8 ...) and array classes (mxCELL_CLASS ...) of the format document.
const MI = {
  INT8: 1,
  UINT8: 2,
  INT16: 3,
  UINT16: 4,
  INT32: 5,
  UINT32: 6,
  SINGLE: 7,
  DOUBLE: 9,
  INT64: 12,
  UINT64: 13,
  MATRIX: 14,
  COMPRESSED: 15,
  UTF8: 16,
  UTF16: 17,
  UTF32: 18,
} as const;
const MX_CELL = 1;
const MX_STRUCT = 2;
const MX_CHAR = 4;
const MX_NUMERIC_FIRST = 6; // double
const MX_NUMERIC_LAST = 15; // uint64

const HEADER_BYTES = 128;

/** Builds a string from character codes in chunks, as spreading a long array overflows the stack. */
function fromCodes(codes: Float64Array, build: (...codes: number[]) => string): string {
  let out = '';
  for (let i = 0; i < codes.length; i += 8192) out += build(...codes.subarray(i, i + 8192));
  return out;
}

interface Element {
  type: number;
  bytes: Uint8Array;
}

class MatReader {
  constructor(
    private readonly file: string,
    private readonly littleEndian: boolean,
  ) {}

  fail(reason: string): never {
    throw new DatasetInputError(this.file, `invalid MAT-file: ${reason}`);
  }

  view(bytes: Uint8Array): DataView {
    return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Reads the data elements of `bytes` in sequence; `padded` as inside an array (8-byte aligned). */
  elements(bytes: Uint8Array, padded: boolean): Element[] {
    const view = this.view(bytes);
    const out: Element[] = [];
    let at = 0;
    while (at + 8 <= bytes.length) {
      const first = view.getUint32(at, this.littleEndian);
      let type: number;
      let start: number;
      let size: number;
      let next: number;
      if (first >>> 16 !== 0) {
        // Small data element: type and size share the first word, data fills the second.
        type = first & 0xffff;
        size = first >>> 16;
        start = at + 4;
        next = at + 8;
        if (size > 4) this.fail(`small data element of ${size} bytes at byte ${at}`);
      } else {
        type = first;
        size = view.getUint32(at + 4, this.littleEndian);
        start = at + 8;
        next = start + (padded ? Math.ceil(size / 8) * 8 : size);
      }
      if (start + size > bytes.length) this.fail(`data element at byte ${at} runs past the end`);
      out.push({ type, bytes: bytes.subarray(start, start + size) });
      at = next;
    }
    return out;
  }

  /** Numeric contents of a data element of any numeric type, as doubles. */
  numbers(element: Element): Float64Array {
    const view = this.view(element.bytes);
    const le = this.littleEndian;
    const read = (width: number, at: (offset: number) => number): Float64Array => {
      const out = new Float64Array(Math.floor(element.bytes.length / width));
      for (let i = 0; i < out.length; i++) out[i] = at(i * width);
      return out;
    };
    switch (element.type) {
      case MI.INT8:
        return read(1, (o) => view.getInt8(o));
      case MI.UINT8:
        return read(1, (o) => view.getUint8(o));
      case MI.INT16:
        return read(2, (o) => view.getInt16(o, le));
      case MI.UINT16:
        return read(2, (o) => view.getUint16(o, le));
      case MI.INT32:
        return read(4, (o) => view.getInt32(o, le));
      case MI.UINT32:
        return read(4, (o) => view.getUint32(o, le));
      case MI.SINGLE:
        return read(4, (o) => view.getFloat32(o, le));
      case MI.DOUBLE:
        return read(8, (o) => view.getFloat64(o, le));
      case MI.INT64:
        return read(8, (o) => Number(view.getBigInt64(o, le)));
      case MI.UINT64:
        return read(8, (o) => Number(view.getBigUint64(o, le)));
      default:
        return this.fail(`data element type ${element.type} where numbers were expected`);
    }
  }

  text(element: Element): string {
    switch (element.type) {
      case MI.UTF8:
        return new TextDecoder('utf-8').decode(element.bytes);
      case MI.UINT8:
      case MI.INT8:
        return new TextDecoder('latin1').decode(element.bytes);
      case MI.UINT16:
      case MI.UTF16:
        return fromCodes(this.numbers({ type: MI.UINT16, bytes: element.bytes }), String.fromCharCode);
      case MI.UTF32:
        return fromCodes(this.numbers({ type: MI.UINT32, bytes: element.bytes }), String.fromCodePoint);
      default:
        return this.fail(`data element type ${element.type} where characters were expected`);
    }
  }

  /** One array: a miMATRIX element (or a miCOMPRESSED element wrapping one). */
  value(element: Element): { name: string; value: MatValue } {
    if (element.type === MI.COMPRESSED) {
      let inflated: Uint8Array;
      try {
        inflated = inflateSync(element.bytes);
      } catch (error) {
        return this.fail(`cannot inflate compressed element: ${(error as Error).message}`);
      }
      const [inner] = this.elements(inflated, false);
      if (!inner) return this.fail('empty compressed element');
      return this.value(inner);
    }
    if (element.type !== MI.MATRIX)
      return this.fail(`data element type ${element.type} where an array was expected`);
    // An empty miMATRIX stands for an empty array (MATLAB writes empty cell contents this way).
    if (element.bytes.length === 0)
      return { name: '', value: { type: 'numeric', dims: [0, 0], data: new Float64Array() } };

    const parts = this.elements(element.bytes, true);
    const [flagsElement, dimsElement, nameElement, ...rest] = parts;
    if (!flagsElement || !dimsElement || !nameElement)
      return this.fail('array without flags, dimensions and name');
    const mxClass = this.view(flagsElement.bytes).getUint32(0, this.littleEndian) & 0xff;
    const dims = Array.from(this.numbers(dimsElement));
    const count = dims.reduce((a, b) => a * b, 1);
    const name = this.text(nameElement);

    if (mxClass >= MX_NUMERIC_FIRST && mxClass <= MX_NUMERIC_LAST) {
      // Only the real part: an imaginary part, if any, follows and is not needed here.
      const real = rest[0];
      return { name, value: { type: 'numeric', dims, data: real ? this.numbers(real) : new Float64Array() } };
    }
    if (mxClass === MX_CHAR) {
      return { name, value: { type: 'char', dims, text: rest[0] ? this.text(rest[0]) : '' } };
    }
    if (mxClass === MX_CELL) {
      if (rest.length !== count)
        return this.fail(`cell array '${name}' of ${count} cells holds ${rest.length}`);
      return { name, value: { type: 'cell', dims, cells: rest.map((cell) => this.value(cell).value) } };
    }
    if (mxClass === MX_STRUCT) {
      const [lengthElement, namesElement, ...values] = rest;
      if (!lengthElement || !namesElement) return this.fail(`struct '${name}' without field names`);
      const length = this.numbers(lengthElement)[0] ?? 0;
      const fields: string[] = [];
      for (let at = 0; length > 0 && at + length <= namesElement.bytes.length; at += length) {
        fields.push(
          this.text({ type: MI.UINT8, bytes: namesElement.bytes.subarray(at, at + length) }).replace(
            /\0.*$/s,
            '',
          ),
        );
      }
      if (values.length !== count * fields.length) {
        return this.fail(
          `struct '${name}' of ${count} x ${fields.length} fields holds ${values.length} values`,
        );
      }
      const elements: Map<string, MatValue>[] = [];
      for (let i = 0; i < count; i++) {
        elements.push(
          new Map(fields.map((field, f) => [field, this.value(values[i * fields.length + f]!).value])),
        );
      }
      return { name, value: { type: 'struct', dims, fields, elements } };
    }
    return { name, value: { type: 'unsupported', dims, mxClass } };
  }
}

/** Parses the variables of a Level 5 MAT-file; `file` names it in errors. */
export function parseMat(bytes: Uint8Array, file: string): Map<string, MatValue> {
  if (bytes.length < HEADER_BYTES)
    throw new DatasetInputError(file, 'not a MAT-file: shorter than its header');
  const header = new TextDecoder('latin1').decode(bytes.subarray(0, 116));
  const order = new TextDecoder('latin1').decode(bytes.subarray(126, 128));
  if (order !== 'IM' && order !== 'MI') throw new DatasetInputError(file, 'not a MATLAB Level 5 MAT-file');
  const littleEndian = order === 'IM';
  const version = new DataView(bytes.buffer, bytes.byteOffset + 124, 2).getUint16(0, littleEndian);
  if (version === 0x0200 || header.includes('MATLAB 7.3')) {
    throw new DatasetInputError(
      file,
      "MATLAB -v7.3 (HDF5) MAT-files are not supported: re-save with save(..., '-v7')",
    );
  }
  if (version !== 0x0100)
    throw new DatasetInputError(file, `unknown MAT-file version 0x${version.toString(16)}`);
  const reader = new MatReader(file, littleEndian);
  const variables = new Map<string, MatValue>();
  for (const element of reader.elements(bytes.subarray(HEADER_BYTES), false)) {
    const { name, value } = reader.value(element);
    if (name !== '') variables.set(name, value);
  }
  return variables;
}

export async function readMatFile(file: string): Promise<Map<string, MatValue>> {
  return parseMat(await readFile(file), file);
}

/** Typed access to MAT values; each failure names the file and the field path. */
export class MatAccess {
  constructor(readonly file: string) {}

  private fail(where: string, reason: string): never {
    throw new DatasetInputError(this.file, `${where}: ${reason}`);
  }

  variable(vars: Map<string, MatValue>, name: string): MatValue {
    return vars.get(name) ?? this.fail(name, 'no such variable');
  }

  field(element: Map<string, MatValue>, name: string, where: string): MatValue {
    return element.get(name) ?? this.fail(`${where}.${name}`, 'no such field');
  }

  string(value: MatValue, where: string): string {
    if (value.type !== 'char') return this.fail(where, `expected a char array, found ${value.type}`);
    if ((value.dims[0] ?? 0) > 1) return this.fail(where, 'expected a single row of characters');
    return value.text;
  }

  number(value: MatValue, where: string): number {
    if (value.type !== 'numeric' || value.data.length !== 1)
      return this.fail(where, 'expected a numeric scalar');
    return value.data[0]!;
  }

  numbers(value: MatValue, where: string): number[] {
    if (value.type !== 'numeric') return this.fail(where, `expected a numeric array, found ${value.type}`);
    return Array.from(value.data);
  }

  /** A cell array of strings, in storage (column-major) order. */
  strings(value: MatValue, where: string): string[] {
    if (value.type !== 'cell') return this.fail(where, `expected a cell array, found ${value.type}`);
    return value.cells.map((cell, i) => this.string(cell, `${where}{${i + 1}}`));
  }

  /** A struct array's elements, in storage (column-major) order. */
  structs(value: MatValue, where: string): Map<string, MatValue>[] {
    if (value.type !== 'struct') return this.fail(where, `expected a struct array, found ${value.type}`);
    return value.elements;
  }
}
