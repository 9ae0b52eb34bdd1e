// The safetensors format (https://github.com/huggingface/safetensors), read and written by hand:
//
//   [8 bytes: N, u64 little-endian] [N bytes: JSON header] [data area]
//
// The header maps each tensor name to {dtype, shape, data_offsets: [begin, end]}, offsets counted
// from the start of the data area, plus an optional "__metadata__" map of strings. Tensors are
// stored little-endian, row-major, back to back with no gaps.
//
// Reading opens only the header; each tensor is read from disk on demand at its offset, so a
// multi-gigabyte checkpoint never sits in memory whole. Writing goes to a temp file that is
// renamed over the target only when complete, so a crash never leaves a half-written file.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { EngineError } from './errors.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './half.js';

// Typed-array views below reinterpret file bytes in host order; the format is little-endian.
if (os.endianness() !== 'LE') throw new Error('safetensors.ts assumes a little-endian host');

/** Bytes per element for every byte-sized dtype the format defines. */
const DTYPE_BYTES: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, F8_E8M0: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
};

/** Dtypes `readF32` converts from. */
const FLOAT_DTYPES = new Set(['F64', 'F32', 'F16', 'BF16']);

/**
 * The order in which the reference writer lays tensors out: by dtype, largest element first
 * (its Rust `Dtype` enum order, descending), then by name.
 */
const WRITE_DTYPE_RANK: Record<WritableDtype, number> = { F32: 0, BF16: 1, F16: 2 };

/** The reference implementation refuses headers above 100 MB; so do we. */
const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
}

interface TensorEntry extends TensorInfo {
  begin: number; // byte offset in the data area
  end: number;
}

export class SafetensorsFile {
  readonly path: string;
  readonly metadata: Record<string, string>;
  private fd: number | null;
  private readonly dataStart: number; // absolute file offset of the data area
  private readonly entries: Map<string, TensorEntry>;

  private constructor(
    filePath: string,
    fd: number,
    dataStart: number,
    entries: Map<string, TensorEntry>,
    metadata: Record<string, string>,
  ) {
    this.path = filePath;
    this.fd = fd;
    this.dataStart = dataStart;
    this.entries = entries;
    this.metadata = metadata;
  }

  /** Open a file and read and check its header (not its tensors). */
  static open(filePath: string): SafetensorsFile {
    let fd: number;
    try {
      fd = fs.openSync(filePath, 'r');
    } catch (e) {
      throw new EngineError(`cannot open safetensors file ${filePath}: ${(e as Error).message}`);
    }
    try {
      const { dataStart, entries, metadata } = readHeader(fd, filePath);
      return new SafetensorsFile(filePath, fd, dataStart, entries, metadata);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  /** Tensors in file order (by data offset). */
  tensors(): TensorInfo[] {
    return [...this.entries.values()].map(({ name, dtype, shape }) => ({ name, dtype, shape: [...shape] }));
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  info(name: string): TensorInfo {
    const { dtype, shape } = this.entry(name);
    return { name, dtype, shape: [...shape] };
  }

  /** The tensor's stored bytes, exactly as on disk (little-endian). */
  readRaw(name: string): Uint8Array {
    const entry = this.entry(name);
    // A fresh ArrayBuffer (not Node's pooled Buffer memory) so typed views over it start aligned.
    const bytes = new Uint8Array(new ArrayBuffer(entry.end - entry.begin));
    this.readBytes(entry, 0, bytes);
    return bytes;
  }

  /** The tensor converted to float32 (from F32, F16, BF16 or F64). Row-major, `shape` as in info(). */
  readF32(name: string): Float32Array {
    const { dtype } = this.floatEntry(name);
    const raw = this.readRaw(name);
    switch (dtype) {
      case 'F32':
        return new Float32Array(raw.buffer, 0, raw.byteLength / 4);
      case 'F16':
        return f16ToF32(new Uint16Array(raw.buffer, 0, raw.byteLength / 2));
      case 'BF16':
        return bf16ToF32(new Uint16Array(raw.buffer, 0, raw.byteLength / 2));
      default: // F64
        return Float32Array.from(new Float64Array(raw.buffer, 0, raw.byteLength / 8));
    }
  }

  /**
   * Elements [first, first + out.length) of the tensor (row-major), converted to float32 into `out`. Lets a caller
   * read a tensor piece by piece, or straight into memory it already holds (a tensor's own buffer), with no staging
   * copy of the whole tensor; F32 data is read into `out` directly.
   */
  readF32Into(name: string, out: Float32Array, first = 0): void {
    const entry = this.floatEntry(name);
    const bytesPer = DTYPE_BYTES[entry.dtype];
    const count = (entry.end - entry.begin) / bytesPer;
    if (!Number.isSafeInteger(first) || first < 0 || first + out.length > count) {
      throw new EngineError(`${this.path}: tensor "${name}" has ${count} elements; cannot read ${out.length} from element ${first}`);
    }
    if (entry.dtype === 'F32') {
      this.readBytes(entry, first * 4, new Uint8Array(out.buffer, out.byteOffset, out.byteLength));
      return;
    }
    const raw = new Uint8Array(new ArrayBuffer(out.length * bytesPer));
    this.readBytes(entry, first * bytesPer, raw);
    if (entry.dtype === 'F16') f16ToF32(new Uint16Array(raw.buffer), out);
    else if (entry.dtype === 'BF16') bf16ToF32(new Uint16Array(raw.buffer), out);
    else out.set(new Float64Array(raw.buffer)); // F64
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }

  private entry(name: string): TensorEntry {
    const entry = this.entries.get(name);
    if (!entry) throw new EngineError(`${this.path}: no tensor named "${name}"`);
    return entry;
  }

  private floatEntry(name: string): TensorEntry {
    const entry = this.entry(name);
    if (!FLOAT_DTYPES.has(entry.dtype)) {
      throw new EngineError(`${this.path}: tensor "${name}" has dtype ${entry.dtype}; expected a float dtype (F32, F16, BF16, F64)`);
    }
    return entry;
  }

  /** Fills `target` with the tensor's stored bytes from byte `offset` of its data on. */
  private readBytes(entry: TensorEntry, offset: number, target: Uint8Array): void {
    if (this.fd === null) throw new EngineError(`${this.path}: cannot read tensor "${entry.name}": the file was closed`);
    const start = this.dataStart + entry.begin + offset;
    let done = 0;
    while (done < target.length) {
      const n = fs.readSync(this.fd, target, done, target.length - done, start + done);
      if (n === 0) {
        throw new EngineError(
          `${this.path} is truncated: tensor "${entry.name}" needs bytes ${entry.begin}-${entry.end} of the data area ` +
            `but the file ends ${target.length - done} bytes short`,
        );
      }
      done += n;
    }
  }
}

function readExactly(fd: number, length: number, position: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, bytes, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return bytes.subarray(0, done);
}

function readHeader(fd: number, file: string) {
  const stat = fs.fstatSync(fd);
  const fileSize = stat.size;
  const bad = (why: string) => new EngineError(`${file} is not a valid safetensors file: ${why}`);
  if (!stat.isFile()) throw bad('it is not a regular file');
  if (fileSize < 8) throw bad(`it is ${fileSize} bytes long, shorter than the 8-byte header length`);

  const headerLength = Number(Buffer.from(readExactly(fd, 8, 0)).readBigUInt64LE(0));
  if (headerLength > fileSize - 8) {
    throw bad(`the header length is ${headerLength} bytes but only ${fileSize - 8} bytes follow (truncated file?)`);
  }
  if (headerLength > MAX_HEADER_BYTES) throw bad(`the header length ${headerLength} exceeds the ${MAX_HEADER_BYTES}-byte limit`);

  let header: unknown;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(readExactly(fd, headerLength, 8));
    header = JSON.parse(text);
  } catch (e) {
    throw bad(`the header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw bad('the header is not a JSON object');

  let metadata: Record<string, string> = {};
  const entries: TensorEntry[] = [];
  for (const [name, value] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(value, bad);
    } else {
      entries.push(parseEntry(name, value, bad));
    }
  }

  // Tensors must tile the data area exactly: no overlap, no gap, nothing missing at the end.
  const dataSize = fileSize - 8 - headerLength;
  entries.sort((x, y) => x.begin - y.begin || x.end - y.end);
  let expectedBegin = 0;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    if (e.begin !== expectedBegin) {
      const previous = i > 0 ? `tensor "${entries[i - 1].name}" ends at ${expectedBegin}` : 'the data area starts at 0';
      throw bad(`tensor "${e.name}" starts at byte ${e.begin} but ${previous} (${e.begin < expectedBegin ? 'overlap' : 'gap'})`);
    }
    if (e.end > dataSize) {
      throw new EngineError(
        `${file} is truncated: tensor "${e.name}" needs bytes ${e.begin}-${e.end} of the data area ` +
          `but the file holds only ${dataSize} bytes of tensor data`,
      );
    }
    expectedBegin = e.end;
  }
  if (expectedBegin !== dataSize) {
    throw bad(`the tensors cover ${expectedBegin} bytes but the data area holds ${dataSize} (trailing bytes)`);
  }

  return { dataStart: 8 + headerLength, entries: new Map(entries.map((e) => [e.name, e])), metadata };
}

function parseMetadata(value: unknown, bad: (why: string) => EngineError): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad('"__metadata__" is not an object');
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw bad(`"__metadata__.${key}" is not a string`);
  }
  return { ...(value as Record<string, string>) };
}

function parseEntry(name: string, value: unknown, bad: (why: string) => EngineError): TensorEntry {
  const v = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
  if (typeof v !== 'object' || v === null) throw bad(`tensor "${name}": entry is not an object`);
  const { dtype, shape, data_offsets: offsets } = v;
  if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES)) {
    throw bad(`tensor "${name}": unsupported dtype ${JSON.stringify(dtype)}`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw bad(`tensor "${name}": shape must be a list of non-negative integers, got ${JSON.stringify(shape)}`);
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
    offsets[0] > offsets[1]
  ) {
    throw bad(`tensor "${name}": data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(offsets)}`);
  }
  const expectedBytes = shape.reduce((a: number, b: number) => a * b, 1) * DTYPE_BYTES[dtype];
  if (offsets[1] - offsets[0] !== expectedBytes) {
    throw bad(
      `tensor "${name}": data_offsets ${JSON.stringify(offsets)} span ${offsets[1] - offsets[0]} bytes ` +
        `but ${dtype} ${JSON.stringify(shape)} needs ${expectedBytes}`,
    );
  }
  return { name, dtype, shape: shape as number[], begin: offsets[0], end: offsets[1] };
}

// ---------------------------------------------------------------------------------------------
// Writing

export type WritableDtype = 'F32' | 'F16' | 'BF16';

export interface TensorToWrite {
  name: string;
  shape: number[];
  data: Float32Array; // row-major, length = product(shape)
  dtype?: WritableDtype; // stored dtype, F32 by default; F16/BF16 are rounded to nearest even
}

/**
 * Write tensors as a safetensors file that the reference Python library reads unchanged
 * (same layout rules: tensors ordered by dtype then name, header padded with spaces to a
 * multiple of 8). Atomic: the file appears complete or not at all.
 */
export function writeSafetensors(filePath: string, tensors: TensorToWrite[], metadata?: Record<string, string>): void {
  const seen = new Set<string>();
  tensors.forEach((t, i) => {
    const where = `${filePath}: tensor #${i} ("${t.name}")`;
    if (typeof t.name !== 'string' || t.name === '' || t.name === '__metadata__') {
      throw new EngineError(`${where}: name must be a non-empty string other than "__metadata__"`);
    }
    if (seen.has(t.name)) throw new EngineError(`${where}: duplicate tensor name`);
    seen.add(t.name);
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new EngineError(`${where}: shape must be a list of non-negative integers, got ${JSON.stringify(t.shape)}`);
    }
    const dtype = t.dtype ?? 'F32';
    if (!(dtype in WRITE_DTYPE_RANK)) throw new EngineError(`${where}: cannot write dtype ${JSON.stringify(dtype)}`);
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (!(t.data instanceof Float32Array) || t.data.length !== count) {
      throw new EngineError(`${where}: shape ${JSON.stringify(t.shape)} needs ${count} float32 values, got ${t.data?.length}`);
    }
  });
  for (const [key, value] of Object.entries(metadata ?? {})) {
    if (typeof value !== 'string') throw new EngineError(`${filePath}: metadata "${key}" must be a string`);
  }

  // Layout order of the reference writer; names compare as UTF-8 bytes (Rust string order).
  const ordered = [...tensors].sort(
    (x, y) =>
      WRITE_DTYPE_RANK[x.dtype ?? 'F32'] - WRITE_DTYPE_RANK[y.dtype ?? 'F32'] ||
      Buffer.compare(Buffer.from(x.name), Buffer.from(y.name)),
  );

  // The header is assembled by hand: JSON.stringify on an object would move integer-like
  // names ("0", "12") to the front and break the order above.
  const fields: string[] = [];
  if (metadata && Object.keys(metadata).length > 0) {
    const sortedMeta = Object.keys(metadata).sort().map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`);
    fields.push(`"__metadata__":{${sortedMeta.join(',')}}`);
  }
  let offset = 0;
  for (const t of ordered) {
    const dtype = t.dtype ?? 'F32';
    const end = offset + t.data.length * DTYPE_BYTES[dtype];
    fields.push(`${JSON.stringify(t.name)}:{"dtype":"${dtype}","shape":${JSON.stringify(t.shape)},"data_offsets":[${offset},${end}]}`);
    offset = end;
  }
  let header = Buffer.from(`{${fields.join(',')}}`, 'utf8');
  const padding = (8 - (header.length % 8)) % 8; // keeps the data area 8-byte aligned
  header = Buffer.concat([header, Buffer.alloc(padding, 0x20)]);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(header.length));

  writeAtomically(filePath, (fd) => {
    writeAll(fd, prefix);
    writeAll(fd, header);
    for (const t of ordered) {
      const dtype = t.dtype ?? 'F32';
      const stored = dtype === 'F16' ? f32ToF16(t.data) : dtype === 'BF16' ? f32ToBf16(t.data) : t.data;
      writeAll(fd, new Uint8Array(stored.buffer, stored.byteOffset, stored.byteLength));
    }
  });
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += fs.writeSync(fd, bytes, done, bytes.length - done);
}

/**
 * Write through `fill` into a temp file beside `filePath`, flush it to disk, then rename it
 * over `filePath`. On any failure the temp file is removed and `filePath` is left as it was.
 */
export function writeAtomically(filePath: string, fill: (fd: number) => void): void {
  const dir = path.dirname(filePath);
  const temp = path.join(dir, `.${path.basename(filePath)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let fd: number | null = null;
  try {
    fd = fs.openSync(temp, 'wx');
    fill(fd);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = null;
    fs.renameSync(temp, filePath);
  } catch (e) {
    if (fd !== null) fs.closeSync(fd);
    fs.rmSync(temp, { force: true });
    if (e instanceof EngineError) throw e;
    throw new EngineError(`cannot write ${filePath}: ${(e as Error).message}`);
  }
  // Make the rename itself durable. Not possible on every platform (Windows cannot open a
  // directory), and the data is already safe, so failure here is ignored.
  try {
    const dirFd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(dirFd);
    } finally {
      fs.closeSync(dirFd);
    }
  } catch {
    /* best effort */
  }
}

// ---------------------------------------------------------------------------------------------
// A model folder: one file, or shards listed in an index

const SINGLE_FILE = 'model.safetensors';
const INDEX_FILE = 'model.safetensors.index.json';

/** Reads the weights of a Hugging Face model folder, single-file or sharded. */
export class CheckpointReader {
  readonly dir: string;
  private readonly files: SafetensorsFile[];
  private readonly fileOf: Map<string, SafetensorsFile>; // tensor name -> file holding it

  private constructor(dir: string, files: SafetensorsFile[], fileOf: Map<string, SafetensorsFile>) {
    this.dir = dir;
    this.files = files;
    this.fileOf = fileOf;
  }

  /**
   * Open `dir/model.safetensors` or, failing that, `dir/model.safetensors.index.json` and every
   * shard it names. All headers are read and cross-checked now; tensor data is read on demand.
   */
  static open(dir: string): CheckpointReader {
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new EngineError(`model folder ${dir} does not exist`);
    const single = path.join(dir, SINGLE_FILE);
    if (fs.existsSync(single)) {
      const file = SafetensorsFile.open(single);
      return new CheckpointReader(dir, [file], new Map(file.tensors().map((t) => [t.name, file])));
    }
    const indexPath = path.join(dir, INDEX_FILE);
    if (!fs.existsSync(indexPath)) {
      const legacy = ['pytorch_model.bin', 'pytorch_model.bin.index.json'].filter((f) => fs.existsSync(path.join(dir, f)));
      const hint = legacy.length > 0 ? ` (found ${legacy.join(', ')}: PyTorch .bin weights are not supported; convert them to safetensors)` : '';
      throw new EngineError(`no weights in ${dir}: looked for ${SINGLE_FILE} and ${INDEX_FILE}${hint}`);
    }
    return CheckpointReader.openSharded(dir, indexPath);
  }

  private static openSharded(dir: string, indexPath: string): CheckpointReader {
    const weightMap = readWeightMap(indexPath);
    const byShard = new Map<string, string[]>(); // shard file name -> tensor names
    for (const [name, shard] of Object.entries(weightMap)) {
      if (!byShard.has(shard)) byShard.set(shard, []);
      byShard.get(shard)!.push(name);
    }
    const files: SafetensorsFile[] = [];
    const fileOf = new Map<string, SafetensorsFile>();
    try {
      for (const [shard, names] of [...byShard].sort(([a], [b]) => (a < b ? -1 : 1))) {
        const shardPath = path.join(dir, shard);
        if (!fs.existsSync(shardPath)) {
          throw new EngineError(
            `shard ${shardPath} is missing: ${indexPath} lists ${names.length} tensor(s) in it (e.g. "${names[0]}")`,
          );
        }
        const file = SafetensorsFile.open(shardPath);
        files.push(file);
        for (const name of names) {
          if (!file.has(name)) {
            throw new EngineError(`${indexPath} maps tensor "${name}" to ${shard}, but ${shardPath} has no such tensor`);
          }
          fileOf.set(name, file);
        }
      }
    } catch (e) {
      for (const f of files) f.close();
      throw e;
    }
    return new CheckpointReader(dir, files, fileOf);
  }

  /** All tensor names, sorted. */
  names(): string[] {
    return [...this.fileOf.keys()].sort();
  }

  has(name: string): boolean {
    return this.fileOf.has(name);
  }

  info(name: string): TensorInfo {
    return this.file(name).info(name);
  }

  shape(name: string): number[] {
    return this.info(name).shape;
  }

  readF32(name: string): Float32Array {
    return this.file(name).readF32(name);
  }

  /** See SafetensorsFile.readF32Into. */
  readF32Into(name: string, out: Float32Array, first = 0): void {
    this.file(name).readF32Into(name, out, first);
  }

  /** The weight files this checkpoint reads from. */
  paths(): string[] {
    return this.files.map((f) => f.path);
  }

  close(): void {
    for (const f of this.files) f.close();
  }

  private file(name: string): SafetensorsFile {
    const file = this.fileOf.get(name);
    if (!file) throw new EngineError(`the weights in ${this.dir} have no tensor named "${name}"`);
    return file;
  }
}

function readWeightMap(indexPath: string): Record<string, string> {
  let index: unknown;
  try {
    index = JSON.parse(fs.readFileSync(indexPath, 'utf8'));
  } catch (e) {
    throw new EngineError(`${indexPath}: not valid JSON (${(e as Error).message})`);
  }
  const weightMap = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new EngineError(`${indexPath}: field "weight_map" must be an object mapping tensor names to shard files`);
  }
  for (const [name, shard] of Object.entries(weightMap)) {
    // Shards live beside the index: a path could read files outside the model folder.
    if (typeof shard !== 'string' || shard === '' || shard !== path.basename(shard) || shard === '..' || shard.includes('\\')) {
      throw new EngineError(`${indexPath}: field "weight_map.${name}" must be a file name in the same folder, got ${JSON.stringify(shard)}`);
    }
  }
  if (Object.keys(weightMap).length === 0) throw new EngineError(`${indexPath}: field "weight_map" is empty`);
  return weightMap as Record<string, string>;
}

/**
 * Index of the first NaN or infinite value in `values`, or -1. `x - x` is 0 for every finite float and NaN
 * otherwise: one subtraction per value, ~1 ns (a 7B model's weights in seconds, next to minutes of reading).
 */
export function firstNonFinite(values: Float32Array): number {
  for (let i = 0; i < values.length; i++) {
    const x = values[i]!;
    if (x - x !== 0) return i;
  }
  return -1;
}
