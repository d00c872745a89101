import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { MAX_HEADER_BYTES, readSafetensors, readSafetensorsHeader, SafetensorsError } from '../../../src/engine/model/safetensors';
import { toFloat32 } from '../../../src/engine/model/tensor';
import { encodeRawSafetensors, encodeSafetensors } from '../../helpers/safetensorsWriter';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'safetensors-test-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function write(name: string, bytes: Uint8Array): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, bytes);
  return file;
}

/** Expect a SafetensorsError naming the file whose reason matches `pattern`. */
function expectRefused(file: string, pattern: RegExp): void {
  let err: unknown;
  try {
    readSafetensors(file);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(SafetensorsError);
  const se = err as SafetensorsError;
  expect(se.file).toBe(file);
  expect(se.reason).toMatch(pattern);
  expect(se.message).toContain(file);
}

const f32 = (n: number) => new Uint8Array(n * 4);

describe('readSafetensors: good files', () => {
  test('F32, F16 and BF16 round-trip with metadata; tensors are views into one buffer', () => {
    const file = write(
      'good.safetensors',
      encodeSafetensors(
        [
          { name: 'a', shape: [2, 3], values: [1, -2, 3.5, 0, 1e-3, -7.25] },
          { name: 'h', dtype: 'F16', shape: [4], values: [0.5, -1, 65504, 2 ** -24] },
          { name: 'b', dtype: 'BF16', shape: [2], values: [1.5, -256] },
          { name: 'empty', shape: [0, 4] },
        ],
        { format: 'pt' },
      ),
    );
    const { tensors, metadata, data } = readSafetensors(file);
    expect(metadata).toEqual({ format: 'pt' });
    expect([...tensors.keys()].sort()).toEqual(['a', 'b', 'empty', 'h']);
    expect(Array.from(toFloat32(tensors.get('a')!))).toEqual([1, -2, 3.5, 0, Math.fround(1e-3), -7.25]);
    expect(Array.from(toFloat32(tensors.get('h')!))).toEqual([0.5, -1, 65504, 2 ** -24]);
    expect(Array.from(toFloat32(tensors.get('b')!))).toEqual([1.5, -256]);
    expect(tensors.get('empty')!.shape).toEqual([0, 4]);
    for (const t of tensors.values()) expect(t.data.buffer).toBe(data.buffer);
    expect(tensors.get('h')!.data.byteOffset).toBe(24); // after a: 6 × 4 bytes
    expect(data.byteLength).toBe(24 + 8 + 4);
  });

  test('chunked reading gives the same bytes as one read', () => {
    const values = Array.from({ length: 1000 }, (_, i) => Math.sin(i));
    const file = write('chunked.safetensors', encodeSafetensors([{ name: 'x', shape: [10, 100], values }, { name: 'y', shape: [3] }]));
    const one = readSafetensors(file);
    const chunked = readSafetensors(file, { chunkBytes: 7 });
    expect(Buffer.from(chunked.data).equals(Buffer.from(one.data))).toBe(true);
    expect(Array.from(toFloat32(chunked.tensors.get('x')!))).toEqual(values.map(Math.fround));
  });

  test('header-only read lists entries without reading data; tensors may be stored in any order', () => {
    const header = { b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] }, a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } };
    const file = write('order.safetensors', encodeRawSafetensors(header, f32(2)));
    const h = readSafetensorsHeader(file);
    expect(h.entries.map((e) => [e.name, e.start, e.end])).toEqual([['b', 4, 8], ['a', 0, 4]]);
    expect(h.dataLength).toBe(8);
    expect(h.dataOffset).toBe(8 + JSON.stringify(header).length);
  });

  test('header padded with trailing spaces is accepted (allowed by the format)', () => {
    const json = JSON.stringify({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }) + '    ';
    expect(readSafetensors(write('padded.safetensors', encodeRawSafetensors(json, f32(1)))).tensors.size).toBe(1);
  });

  test('a skipped tensor of another standard dtype (CLIP int64 position_ids) is validated but not returned', () => {
    const header = {
      'text_model.embeddings.position_ids': { dtype: 'I64', shape: [1, 3], data_offsets: [0, 24] },
      w: { dtype: 'F32', shape: [2], data_offsets: [24, 32] },
    };
    const file = write('skip.safetensors', encodeRawSafetensors(header, new Uint8Array(32)));
    const r = readSafetensors(file, { skip: (n) => n.endsWith('position_ids') });
    expect([...r.tensors.keys()]).toEqual(['w']);
    expect(() => readSafetensors(file)).toThrow(/unknown dtype I64 for tensor text_model.embeddings.position_ids/);
  });
});

describe('readSafetensors: bad files are refused with the reason', () => {
  const good = () => encodeSafetensors([{ name: 'a', shape: [4] }, { name: 'b', shape: [2, 2] }]);

  test('missing file', () => expectRefused(path.join(dir, 'nope.safetensors'), /cannot open \(ENOENT\)/));
  test('shorter than the length field', () => expectRefused(write('short.safetensors', new Uint8Array(5)), /too short/));

  test('truncated file (data cut off)', () => {
    const bytes = good();
    expectRefused(write('truncated.safetensors', bytes.subarray(0, bytes.length - 3)), /exceed the data region .*truncated/);
  });

  test('truncated file (inside the header)', () => {
    expectRefused(write('truncated-header.safetensors', good().subarray(0, 20)), /does not fit in the 20-byte file/);
  });

  test('oversized header length', () => {
    const bytes = encodeRawSafetensors({}, new Uint8Array(0), BigInt(MAX_HEADER_BYTES) + 1n);
    expectRefused(write('huge-header.safetensors', bytes), /header length 104857601 exceeds the 104857600-byte limit/);
    const u64max = encodeRawSafetensors({}, new Uint8Array(0), 2n ** 64n - 1n);
    expectRefused(write('u64max.safetensors', u64max), /exceeds the .*limit/);
  });

  test('header not JSON', () => expectRefused(write('notjson.safetensors', encodeRawSafetensors('{"a": [', new Uint8Array(0))), /not valid JSON/));
  test('header JSON but not an object', () => expectRefused(write('array.safetensors', encodeRawSafetensors([1, 2], new Uint8Array(0))), /must be a JSON object/));

  test('unknown dtype (I8)', () => {
    const header = { q: { dtype: 'I8', shape: [4], data_offsets: [0, 4] } };
    expectRefused(write('i8.safetensors', encodeRawSafetensors(header, new Uint8Array(4))), /unknown dtype I8 for tensor q/);
  });

  test('shape × dtype size disagrees with the byte range', () => {
    const header = { a: { dtype: 'F32', shape: [3], data_offsets: [0, 16] } };
    expectRefused(write('size.safetensors', encodeRawSafetensors(header, f32(4))), /tensor a: shape \[3\] × F32 needs 12 bytes but data_offsets span 16/);
  });

  test('bad shape and bad offsets', () => {
    const neg = { a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } };
    expectRefused(write('neg.safetensors', encodeRawSafetensors(neg, f32(1))), /shape must be a list of non-negative integers/);
    const rev = { a: { dtype: 'F32', shape: [0], data_offsets: [4, 0] } };
    expectRefused(write('rev.safetensors', encodeRawSafetensors(rev, f32(1))), /end 0 < start 4/);
    const one = { a: { dtype: 'F32', shape: [1], data_offsets: [0] } };
    expectRefused(write('one.safetensors', encodeRawSafetensors(one, f32(1))), /data_offsets must be \[start, end\]/);
  });

  test('overlapping offsets', () => {
    const header = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } };
    expectRefused(write('overlap.safetensors', encodeRawSafetensors(header, f32(3))), /tensor b: .*overlap the previous tensor ending at 8/);
  });

  test('gap between tensors', () => {
    const header = { a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } };
    expectRefused(write('gap.safetensors', encodeRawSafetensors(header, f32(3))), /tensor b: gap of 4 bytes/);
  });

  test('trailing bytes after the last tensor', () => {
    const bytes = Buffer.concat([good(), Buffer.from([1, 2, 3])]);
    expectRefused(write('trailing.safetensors', bytes), /3 trailing bytes after the last tensor/);
  });

  test('offsets beyond the data region', () => {
    const header = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
    expectRefused(write('oob.safetensors', encodeRawSafetensors(header, f32(1))), /exceed the data region of 4 bytes/);
  });

  test('__metadata__ must map strings to strings', () => {
    const header = { __metadata__: { n: 3 }, a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } };
    expectRefused(write('meta.safetensors', encodeRawSafetensors(header, f32(1))), /__metadata__ value for "n" must be a string/);
  });
});
