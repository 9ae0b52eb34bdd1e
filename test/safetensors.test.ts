import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectedWeights } from '../src-main/engine/config.js';
import { EngineError } from '../src-main/engine/errors.js';
import { Rng } from '../src-main/engine/rng.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../src-main/engine/half.js';
import { CheckpointReader, SafetensorsFile, writeAtomically, writeSafetensors } from '../src-main/engine/safetensors.js';
import { writeTinyLlama } from './helpers/tiny-model.js';
import { makeTempDir } from './helpers/tmp.js';

/** Raw header of a file we wrote: [declared length, JSON text with its padding]. */
function rawHeader(file: string): [number, string] {
  const bytes = fs.readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  return [n, bytes.subarray(8, 8 + n).toString('utf8')];
}

/** A safetensors file built by hand, for inputs our writer would never produce. */
function handMade(file: string, header: unknown, data: Uint8Array, headerText = JSON.stringify(header)): string {
  const json = Buffer.from(headerText);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([prefix, json, data]));
  return file;
}

function expectEngineError(fn: () => unknown, ...parts: (string | RegExp)[]) {
  let error: unknown;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(EngineError);
  for (const part of parts) expect((error as Error).message).toMatch(part);
}

describe('writeSafetensors + SafetensorsFile', () => {
  it('round-trips float32 tensors exactly, with metadata, in the reference layout', () => {
    const dir = makeTempDir('st-f32');
    const file = path.join(dir, 'a.safetensors');
    const rng = new Rng(1);
    const matrix = Float32Array.from({ length: 6 }, () => rng.normal());
    writeSafetensors(
      file,
      [
        { name: 'w', shape: [2, 3], data: matrix },
        { name: 'scalar', shape: [], data: new Float32Array([-7.25]) },
        { name: 'empty', shape: [0, 4], data: new Float32Array(0) },
        { name: '10', shape: [1], data: new Float32Array([10]) },
        { name: '9', shape: [1], data: new Float32Array([9]) },
      ],
      { format: 'pt', note: 'ünïcode ok' },
    );

    const f = SafetensorsFile.open(file);
    expect(f.metadata).toEqual({ format: 'pt', note: 'ünïcode ok' });
    // Same dtype: ordered by name as UTF-8 bytes, so "10" < "9" < "empty" (not numerically).
    expect(f.tensors().map((t) => t.name)).toEqual(['10', '9', 'empty', 'scalar', 'w']);
    expect(f.info('w')).toEqual({ name: 'w', dtype: 'F32', shape: [2, 3] });
    expect(f.readF32('w')).toEqual(matrix);
    expect(Array.from(f.readF32('scalar'))).toEqual([-7.25]);
    expect(f.readF32('empty').length).toBe(0);
    expect(f.has('w') && !f.has('nope')).toBe(true);
    f.close();

    // Header padded with spaces so the data area starts 8-byte aligned.
    const [n, text] = rawHeader(file);
    expect(n % 8).toBe(0);
    expect(text.trimEnd()).toBe(text.trimEnd().trim());
    expect(text.startsWith('{"__metadata__":{"format":"pt","note":"ünïcode ok"},"10":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}')).toBe(true);
    expect(fs.statSync(file).size).toBe(8 + n + 4 * (6 + 1 + 0 + 1 + 1));
  });

  it('orders tensors by dtype (F32, BF16, F16) then name, like the Python library', () => {
    const file = path.join(makeTempDir('st-order'), 'm.safetensors');
    const one = new Float32Array([1]);
    writeSafetensors(file, [
      { name: 'a', shape: [1], data: one, dtype: 'F16' },
      { name: 'b', shape: [1], data: one, dtype: 'BF16' },
      { name: 'c', shape: [1], data: one, dtype: 'F32' },
      { name: 'd', shape: [1], data: one, dtype: 'F16' },
    ]);
    const f = SafetensorsFile.open(file);
    expect(f.tensors().map((t) => `${t.name}:${t.dtype}`)).toEqual(['c:F32', 'b:BF16', 'a:F16', 'd:F16']);
    f.close();
  });

  it('converts float32 to f16 with round-to-nearest-even (known IEEE bit patterns)', () => {
    const cases: [number, number][] = [
      [1, 0x3c00],
      [-2, 0xc000],
      [0.1, 0x2e66],
      [-0, 0x8000],
      [65504, 0x7bff], // largest half
      [65519, 0x7bff], // just below the halfway point to 65536
      [65520, 0x7c00], // halfway: ties to even, which is Infinity
      [1e5, 0x7c00],
      [2 ** -14, 0x0400], // smallest normal
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -25, 0x0000], // halfway between 0 and 2^-24: ties to even (0)
      [1.5 * 2 ** -25, 0x0001],
      [3 * 2 ** -25, 0x0002], // halfway between subnormals 1 and 2: ties to even (2)
      [1e-10, 0x0000],
      [1 + 2 ** -11, 0x3c00], // halfway between 1 and the next half: ties to even
      [1 + 3 * 2 ** -11, 0x3c02],
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
    ];
    const bits = f32ToF16(Float32Array.from(cases.map((c) => c[0])));
    expect(Array.from(bits).map((b) => b.toString(16))).toEqual(cases.map((c) => c[1].toString(16)));
    expect(Number.isNaN(f16ToF32(f32ToF16(new Float32Array([NaN])))[0])).toBe(true);
    // Decoding the same patterns gives the exact values back.
    expect(Array.from(f16ToF32(new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0400, 0x0001, 0x7c00, 0xfc00])))).toEqual([
      1, -2, 65504, 2 ** -14, 2 ** -24, Infinity, -Infinity,
    ]);
  });

  it('every f16 and bf16 bit pattern survives decode -> encode', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const isHalfNaN = (h: number) => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
    const isBf16NaN = (h: number) => (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0;
    const half = f32ToF16(f16ToF32(all));
    const bf = f32ToBf16(bf16ToF32(all));
    for (let h = 0; h < 65536; h++) {
      if (!isHalfNaN(h) && half[h] !== h) throw new Error(`f16 0x${h.toString(16)} came back as 0x${half[h].toString(16)}`);
      if (!isBf16NaN(h) && bf[h] !== h) throw new Error(`bf16 0x${h.toString(16)} came back as 0x${bf[h].toString(16)}`);
    }
  });

  it('rounds random values to the nearest representable f16 and bf16', () => {
    const rng = new Rng(3);
    // Magnitudes from 2^-28 (below the f16 subnormals) to 2^17 (past the f16 maximum).
    const x = Float32Array.from({ length: 20000 }, () => (rng.next() - 0.5) * 2 ** (rng.int(46) - 28));
    for (const [encode, decode] of [
      [f32ToF16, f16ToF32],
      [f32ToBf16, bf16ToF32],
    ] as const) {
      const bits = encode(x);
      const value = decode(bits);
      // Neighbours one step away in magnitude (bits +- 1 within the same sign).
      const up = decode(bits.map((b) => ((b & 0x7fff) === 0x7fff ? b : b + 1)));
      const down = decode(bits.map((b) => ((b & 0x7fff) === 0 ? b : b - 1)));
      const notNearest: string[] = [];
      for (let i = 0; i < x.length; i++) {
        if (!Number.isFinite(value[i])) continue; // overflow, checked by the known-value test
        const err = Math.abs(x[i] - value[i]);
        if (err > Math.abs(x[i] - up[i]) || err > Math.abs(x[i] - down[i])) notNearest.push(`${x[i]} -> ${value[i]}`);
      }
      expect(notNearest).toEqual([]);
    }
  });

  it('round-trips F16 and BF16 files to the rounded values', () => {
    const file = path.join(makeTempDir('st-half'), 'h.safetensors');
    const values = new Float32Array([0, -0, 1, -2.5, 0.1, 3.14159, 65504, 1e5, 2 ** -24, 1e-40, -3.4e38, Infinity]);
    writeSafetensors(file, [
      { name: 'h', shape: [3, 4], data: values, dtype: 'F16' },
      { name: 'b', shape: [12], data: values, dtype: 'BF16' },
    ]);
    const f = SafetensorsFile.open(file);
    expect(f.info('h').dtype).toBe('F16');
    expect(f.readF32('h')).toEqual(f16ToF32(f32ToF16(values)));
    expect(f.readF32('b')).toEqual(bf16ToF32(f32ToBf16(values)));
    expect(Array.from(f.readF32('h').subarray(0, 4))).toEqual([0, -0, 1, -2.5]);
    expect(f.readF32('b')[9]).toBe(2 ** -133); // 1e-40 rounds to the smallest bf16 subnormal
    expect(f.readRaw('h').byteLength).toBe(24);
    f.close();
  });

  it('reads F64 tensors and raw bytes of non-float tensors', () => {
    const file = path.join(makeTempDir('st-f64'), 'x.safetensors');
    const doubles = new Float64Array([1.5, -2.25, 1e-300, Math.PI]);
    const ints = new BigInt64Array([1n, -2n]);
    handMade(
      file,
      {
        d: { dtype: 'F64', shape: [2, 2], data_offsets: [0, 32] },
        i: { dtype: 'I64', shape: [2], data_offsets: [32, 48] },
      },
      Buffer.concat([new Uint8Array(doubles.buffer), new Uint8Array(ints.buffer)]),
    );
    const f = SafetensorsFile.open(file);
    expect(f.metadata).toEqual({});
    expect(Array.from(f.readF32('d'))).toEqual([1.5, -2.25, 0, Math.fround(Math.PI)]);
    expect(Array.from(new BigInt64Array(f.readRaw('i').buffer))).toEqual([1n, -2n]);
    expectEngineError(() => f.readF32('i'), file, '"i"', 'I64');
    expectEngineError(() => f.readF32('missing'), file, '"missing"');
    f.close();
    expectEngineError(() => f.readF32('d'), 'closed');
  });

  it('reads a range of elements into a given array, from every float dtype', () => {
    const file = path.join(makeTempDir('st-into'), 'r.safetensors');
    const values = new Float32Array([0.1, -2.5, 3.14159, 7, -0.001, 1e5]);
    writeSafetensors(file, [
      { name: 'f', shape: [2, 3], data: values },
      { name: 'h', shape: [6], data: values, dtype: 'F16' },
      { name: 'b', shape: [3, 2], data: values, dtype: 'BF16' },
    ]);
    const f = SafetensorsFile.open(file);
    for (const name of ['f', 'h', 'b']) {
      const whole = f.readF32(name);
      // Into the middle of a larger array (an offset view, as a tensor's buffer inside a heap would be).
      const host = new Float32Array(10).fill(9);
      f.readF32Into(name, host.subarray(3, 7), 1);
      expect(Array.from(host)).toEqual([9, 9, 9, ...whole.subarray(1, 5), 9, 9, 9]);
      const all = new Float32Array(6);
      f.readF32Into(name, all);
      expect(all).toEqual(whole);
    }
    expectEngineError(() => f.readF32Into('f', new Float32Array(3), 4), file, '"f"', '6 elements');
    expectEngineError(() => f.readF32Into('f', new Float32Array(1), -1), file, '"f"');
    f.close();
  });

  it('reads each tensor from disk when asked, not at open', () => {
    const file = path.join(makeTempDir('st-lazy'), 'l.safetensors');
    writeSafetensors(file, [
      { name: 'a', shape: [2], data: new Float32Array([1, 2]) },
      { name: 'b', shape: [2], data: new Float32Array([3, 4]) },
    ]);
    const f = SafetensorsFile.open(file);
    // Overwrite b's bytes in place after open: the reader must see the new bytes.
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, new Uint8Array(new Float32Array([30, 40]).buffer), 0, 8, fs.statSync(file).size - 8);
    fs.closeSync(fd);
    expect(Array.from(f.readF32('b'))).toEqual([30, 40]);
    expect(Array.from(f.readF32('a'))).toEqual([1, 2]);
    f.close();
  });

  describe('refuses broken files with a message naming the file', () => {
    const dir = makeTempDir('st-bad');
    const good = path.join(dir, 'good.safetensors');
    writeSafetensors(good, [
      { name: 'first', shape: [4], data: new Float32Array(4) },
      { name: 'second', shape: [8], data: new Float32Array(8) },
    ]);
    const goodBytes = fs.readFileSync(good);
    const variant = (name: string, bytes: Uint8Array) => {
      const file = path.join(dir, name);
      fs.writeFileSync(file, bytes);
      return file;
    };

    it('truncated data names the tensor that is cut off', () => {
      const file = variant('truncated.safetensors', goodBytes.subarray(0, goodBytes.length - 10));
      expectEngineError(() => SafetensorsFile.open(file), file, 'truncated', '"second"');
    });

    it('a file that shrinks after open fails on read, naming the tensor', () => {
      const file = variant('shrinks.safetensors', goodBytes);
      const f = SafetensorsFile.open(file);
      fs.truncateSync(file, goodBytes.length - 4);
      expectEngineError(() => f.readF32('second'), file, 'truncated', '"second"');
      f.close();
    });

    it('too short, or a header length past the end of the file', () => {
      expectEngineError(() => SafetensorsFile.open(variant('tiny.safetensors', new Uint8Array(5))), 'tiny.safetensors', '5 bytes');
      const huge = Buffer.from(goodBytes);
      huge.writeBigUInt64LE(1n << 40n, 0);
      expectEngineError(() => SafetensorsFile.open(variant('huge.safetensors', huge)), 'huge.safetensors', 'header length');
    });

    it('a header that is not JSON, or not an object', () => {
      const file = handMade(path.join(dir, 'json.safetensors'), null, new Uint8Array(0), '{"a": oops}');
      expectEngineError(() => SafetensorsFile.open(file), file, 'not valid UTF-8 JSON');
      const arr = handMade(path.join(dir, 'array.safetensors'), [], new Uint8Array(0));
      expectEngineError(() => SafetensorsFile.open(arr), arr, 'not a JSON object');
    });

    it('offsets that disagree with dtype and shape, overlap, leave gaps or trailing bytes', () => {
      const data = new Uint8Array(16);
      const cases: [string, unknown, string | RegExp][] = [
        ['size.safetensors', { t: { dtype: 'F32', shape: [3], data_offsets: [0, 16] } }, /"t".*needs 12/],
        ['dtype.safetensors', { t: { dtype: 'Q4', shape: [4], data_offsets: [0, 16] } }, /"t".*unsupported dtype "Q4"/],
        ['shape.safetensors', { t: { dtype: 'F32', shape: [-4], data_offsets: [0, 16] } }, /"t".*shape/],
        ['order.safetensors', { t: { dtype: 'F32', shape: [4], data_offsets: [16, 0] } }, /"t".*data_offsets/],
        [
          'overlap.safetensors',
          { a: { dtype: 'F32', shape: [3], data_offsets: [0, 12] }, b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } },
          /"b".*overlap/,
        ],
        [
          'gap.safetensors',
          { a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } },
          /"b".*gap/,
        ],
        ['trailing.safetensors', { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, /trailing/],
        ['meta.safetensors', { __metadata__: { n: 1 }, a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, /__metadata__\.n/],
      ];
      for (const [name, header, message] of cases) {
        const file = handMade(path.join(dir, name), header, data);
        expectEngineError(() => SafetensorsFile.open(file), file, message);
      }
    });

    it('a missing file', () => {
      expectEngineError(() => SafetensorsFile.open(path.join(dir, 'nope.safetensors')), 'nope.safetensors', 'cannot open');
    });
  });

  it('refuses bad input to the writer and leaves no file behind', () => {
    const dir = makeTempDir('st-write-bad');
    const file = path.join(dir, 'w.safetensors');
    const t = (name: string, shape: number[], n: number) => ({ name, shape, data: new Float32Array(n) });
    expectEngineError(() => writeSafetensors(file, [t('a', [2, 2], 3)]), file, '"a"', 'needs 4');
    expectEngineError(() => writeSafetensors(file, [t('a', [1], 1), t('a', [1], 1)]), '#1', 'duplicate');
    expectEngineError(() => writeSafetensors(file, [t('__metadata__', [1], 1)]), '#0');
    expectEngineError(() => writeSafetensors(file, [t('a', [1.5], 1)]), 'shape');
    expectEngineError(() => writeSafetensors(path.join(dir, 'no-such-dir', 'x.safetensors'), [t('a', [1], 1)]), 'cannot write', 'no-such-dir');
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('writes atomically: a failure midway keeps the old file and leaves no temp file', () => {
    const dir = makeTempDir('st-atomic');
    const file = path.join(dir, 'keep.safetensors');
    writeSafetensors(file, [{ name: 'old', shape: [1], data: new Float32Array([1]) }]);
    const before = fs.readFileSync(file);
    expect(() =>
      writeAtomically(file, (fd) => {
        fs.writeSync(fd, 'partial bytes');
        throw new Error('disk full');
      }),
    ).toThrow(/disk full/);
    expect(fs.readFileSync(file)).toEqual(before);
    expect(fs.readdirSync(dir)).toEqual(['keep.safetensors']);
    // And a successful write replaces it whole.
    writeSafetensors(file, [{ name: 'new', shape: [1], data: new Float32Array([2]) }]);
    const f = SafetensorsFile.open(file);
    expect(f.tensors().map((x) => x.name)).toEqual(['new']);
    f.close();
    expect(fs.readdirSync(dir)).toEqual(['keep.safetensors']);
  });
});

describe('CheckpointReader', () => {
  it('reads a single-file model folder', () => {
    const dir = makeTempDir('ckpt-single');
    const config = writeTinyLlama(dir, { seed: 5 });
    const reader = CheckpointReader.open(dir);
    const expected = expectedWeights(config);
    expect(reader.names()).toEqual([...expected.keys()].sort());
    for (const [name, shape] of expected) {
      expect(reader.shape(name)).toEqual(shape);
      expect(reader.readF32(name).length).toBe(shape.reduce((a, b) => a * b, 1));
    }
    expect(reader.paths()).toEqual([path.join(dir, 'model.safetensors')]);
    expectEngineError(() => reader.readF32('model.nope'), dir, '"model.nope"');
    reader.close();
  });

  it('reads a sharded folder to the same values as the single file', () => {
    const singleDir = makeTempDir('ckpt-one');
    const shardedDir = makeTempDir('ckpt-sharded');
    const bf16Dir = makeTempDir('ckpt-bf16');
    writeTinyLlama(singleDir, { seed: 9 });
    writeTinyLlama(shardedDir, { seed: 9, shards: 3 });
    writeTinyLlama(bf16Dir, { seed: 9, shards: 2, dtype: 'BF16' });
    const single = CheckpointReader.open(singleDir);
    const sharded = CheckpointReader.open(shardedDir);
    const bf16 = CheckpointReader.open(bf16Dir);
    expect(sharded.paths().map((p) => path.basename(p))).toEqual([
      'model-00001-of-00003.safetensors',
      'model-00002-of-00003.safetensors',
      'model-00003-of-00003.safetensors',
    ]);
    expect(sharded.names()).toEqual(single.names());
    for (const name of single.names()) {
      const values = single.readF32(name);
      expect(sharded.readF32(name)).toEqual(values);
      expect(bf16.info(name).dtype).toBe('BF16');
      expect(bf16.readF32(name)).toEqual(bf16ToF32(f32ToBf16(values)));
    }
    for (const r of [single, sharded, bf16]) r.close();
  });

  it('explains a folder without weights', () => {
    const dir = makeTempDir('ckpt-empty');
    expectEngineError(() => CheckpointReader.open(dir), dir, 'model.safetensors', 'model.safetensors.index.json');
    fs.writeFileSync(path.join(dir, 'pytorch_model.bin'), '');
    expectEngineError(() => CheckpointReader.open(dir), 'pytorch_model.bin', 'not supported');
    expectEngineError(() => CheckpointReader.open(path.join(dir, 'absent')), 'absent', 'does not exist');
  });

  describe('sharded folder errors', () => {
    const fresh = (name: string) => {
      const dir = makeTempDir(name);
      writeTinyLlama(dir, { shards: 2 });
      return { dir, index: path.join(dir, 'model.safetensors.index.json') };
    };
    const editIndex = (index: string, edit: (json: any) => unknown) => {
      const json = JSON.parse(fs.readFileSync(index, 'utf8'));
      fs.writeFileSync(index, JSON.stringify(edit(json) ?? json));
    };

    it('a missing shard names the shard and the index', () => {
      const { dir, index } = fresh('ckpt-missing-shard');
      fs.rmSync(path.join(dir, 'model-00002-of-00002.safetensors'));
      expectEngineError(() => CheckpointReader.open(dir), 'model-00002-of-00002.safetensors', 'missing', index);
    });

    it('a tensor listed in the index but absent from its shard', () => {
      const { dir, index } = fresh('ckpt-missing-tensor');
      editIndex(index, (j) => {
        j.weight_map['model.layers.9.extra.weight'] = 'model-00001-of-00002.safetensors';
      });
      expectEngineError(() => CheckpointReader.open(dir), index, '"model.layers.9.extra.weight"', 'model-00001-of-00002.safetensors');
    });

    it('a malformed index', () => {
      const { dir, index } = fresh('ckpt-bad-index');
      editIndex(index, () => ({ metadata: {} }));
      expectEngineError(() => CheckpointReader.open(dir), index, '"weight_map"');
      editIndex(index, () => ({ weight_map: { 'model.norm.weight': '../elsewhere.safetensors' } }));
      expectEngineError(() => CheckpointReader.open(dir), index, 'weight_map.model.norm.weight', 'same folder');
      fs.writeFileSync(index, '{"weight_map": ');
      expectEngineError(() => CheckpointReader.open(dir), index, 'not valid JSON');
    });
  });
});
