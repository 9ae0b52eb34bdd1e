// PyTorch checkpoint files (`torch.save`, the zip format of torch >= 1.6), without Python.
//
//   <archive>/data.pkl       the pickled object; tensors are _rebuild_tensor_v2 records whose
//                            storages are persistent ids ('storage', type, key, location, numel)
//   <archive>/data/<key>     each storage's raw little-endian elements
//   <archive>/byteorder      "little" (absent in old files, which are little-endian)
//   <archive>/version        the serialization version
//
// Reading unpickles data.pkl with the allow-listed VM of pickle.ts and reads a tensor's storage
// only when asked. Writing makes a file that torch.load(..., weights_only=True) accepts.

import path from 'node:path';
import { EngineError } from '../engine/errors.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../engine/half.js';
import { pickleTensorDict, PyObject, type PyKey, type PyValue, type StorageRecord, type TensorRecord, type TorchDtype, unpickle } from './pickle.js';
import { writeZip, ZipReader } from './zip.js';

const ITEM_BYTES: Record<TorchDtype, number> = {
  float32: 4, float16: 2, bfloat16: 2, float64: 8, int64: 8, int32: 4, int16: 2, int8: 1, uint8: 1, bool: 1,
};

export function isTensor(v: PyValue | undefined): v is TensorRecord {
  return typeof v === 'object' && v !== null && (v as TensorRecord).kind === 'tensor';
}

/** A torch.save file opened for reading. Call close() when done. */
export class TorchFile {
  private cachedStorage: { key: string; values: Float32Array } | null = null;

  private constructor(
    readonly path: string,
    private readonly zip: ZipReader,
    private readonly prefix: string,
    readonly root: PyValue,
  ) {}

  static open(file: string): TorchFile {
    const zip = openArchive(file);
    try {
      const pkl = zip.entries().find((e) => /^[^/]+\/data\.pkl$/.test(e.name) || e.name === 'data.pkl');
      if (!pkl) throw new EngineError(`${file}: not a PyTorch checkpoint (the archive has no data.pkl)`);
      const prefix = pkl.name.slice(0, pkl.name.length - 'data.pkl'.length);
      const byteorder = `${prefix}byteorder`;
      if (zip.has(byteorder)) {
        const order = zip.read(byteorder).toString('latin1').trim();
        if (order !== 'little') throw new EngineError(`${file}: tensors are stored ${order}-endian; only little-endian checkpoints are supported`);
      }
      const root = unpickle(zip.read(pkl.name), { source: `${file}: ${pkl.name}` });
      return new TorchFile(file, zip, prefix, root);
    } catch (e) {
      zip.close();
      throw e;
    }
  }

  /** Every tensor reachable through (nested) dictionaries, by dotted path ("model.layers.0.x"). */
  tensors(): Map<string, TensorRecord> {
    const out = new Map<string, TensorRecord>();
    const walk = (v: PyValue, prefix: string) => {
      if (isTensor(v)) out.set(prefix, v);
      else if (v instanceof Map) for (const [k, child] of v) walk(child, prefix === '' ? String(k) : `${prefix}.${String(k)}`);
    };
    walk(this.root, '');
    return out;
  }

  /** The elements of `t` in row-major order as float32 (float and integer storages). */
  readF32(t: TensorRecord, name: string): Float32Array {
    const values = this.storageF32(t.storage, name);
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (numel === 0) return new Float32Array(0);
    // The last element reachable through the strides must lie inside the storage.
    const last = t.offset + t.shape.reduce((s, d, i) => s + (d - 1) * t.stride[i], 0);
    if (last >= values.length) {
      throw new EngineError(`${this.path}: tensor "${name}" reaches element ${last} of storage ${t.storage.key}, which holds ${values.length}`);
    }
    const contiguous = t.shape.every((_, i) => t.shape[i] === 1 || t.stride[i] === t.shape.slice(i + 1).reduce((a, b) => a * b, 1));
    if (contiguous && t.offset === 0 && numel === values.length) {
      // The whole storage: hand it over instead of copying (a 7B embedding is 0.5 GB as float32).
      this.cachedStorage = null;
      return values;
    }
    if (contiguous) return values.slice(t.offset, t.offset + numel);
    const out = new Float32Array(numel);
    const index = new Array(t.shape.length).fill(0);
    for (let i = 0; i < numel; i++) {
      let at = t.offset;
      for (let d = 0; d < index.length; d++) at += index[d] * t.stride[d];
      out[i] = values[at];
      for (let d = index.length - 1; d >= 0; d--) {
        if (++index[d] < t.shape[d]) break;
        index[d] = 0;
      }
    }
    return out;
  }

  close(): void {
    this.cachedStorage = null;
    this.zip.close();
  }

  private storageF32(s: StorageRecord, name: string): Float32Array {
    if (this.cachedStorage?.key === s.key) return this.cachedStorage.values;
    const entry = `${this.prefix}data/${s.key}`;
    if (!this.zip.has(entry)) throw new EngineError(`${this.path}: tensor "${name}" needs storage ${entry}, which the archive does not contain`);
    const raw = this.zip.read(entry);
    const itemBytes = ITEM_BYTES[s.dtype];
    if (raw.length < s.numel * itemBytes) {
      throw new EngineError(`${this.path}: storage ${entry} holds ${raw.length} bytes; ${s.numel} ${s.dtype} elements need ${s.numel * itemBytes}`);
    }
    // Typed views need an aligned start; copy only when the entry's bytes do not have one.
    let buffer = raw.buffer as ArrayBuffer;
    let start = raw.byteOffset;
    if (start % itemBytes !== 0) {
      const copy = new Uint8Array(s.numel * itemBytes);
      copy.set(raw.subarray(0, copy.length));
      [buffer, start] = [copy.buffer, 0];
    }
    const values = toF32(buffer, start, s.dtype, s.numel, `${this.path}: tensor "${name}"`);
    this.cachedStorage = { key: s.key, values };
    return values;
  }
}

function openArchive(file: string): ZipReader {
  try {
    return ZipReader.open(file);
  } catch (e) {
    if (e instanceof EngineError && /not a valid ZIP/.test(e.message)) {
      throw new EngineError(`${file}: not a PyTorch zip checkpoint (files saved by torch < 1.6 use an older format; load and re-save them with a newer torch)`);
    }
    throw e;
  }
}

function toF32(buffer: ArrayBuffer, start: number, dtype: TorchDtype, n: number, where: string): Float32Array {
  switch (dtype) {
    case 'float32':
      return new Float32Array(buffer, start, n); // a view: ZipReader.read returns a buffer of its own
    case 'float16':
      return f16ToF32(new Uint16Array(buffer, start, n));
    case 'bfloat16':
      return bf16ToF32(new Uint16Array(buffer, start, n));
    case 'float64':
      return Float32Array.from(new Float64Array(buffer, start, n));
    case 'int64':
      return Float32Array.from(new BigInt64Array(buffer, start, n), (v) => Number(v));
    case 'int32':
      return Float32Array.from(new Int32Array(buffer, start, n));
    case 'int16':
      return Float32Array.from(new Int16Array(buffer, start, n));
    case 'int8':
      return Float32Array.from(new Int8Array(buffer, start, n));
    case 'uint8':
    case 'bool':
      return Float32Array.from(new Uint8Array(buffer, start, n));
    default:
      throw new EngineError(`${where}: unsupported dtype ${dtype}`);
  }
}

/** A field of a plain record: a dict's key or a Namespace's attribute (undefined when absent). */
export function pyAttribute(v: PyValue | undefined, key: PyKey): PyValue | undefined {
  if (v instanceof Map) return v.get(key);
  if (v instanceof PyObject) return v.attributes.get(key);
  return undefined;
}


// ---------------------------------------------------------------------------------------------
// Writing

export type SavedFloatDtype = 'float32' | 'float16' | 'bfloat16';

export interface TensorToSave {
  name: string;
  shape: number[];
  data: Float32Array; // row-major
  dtype?: SavedFloatDtype; // default float32; narrower types round to nearest even as torch does
}

/**
 * Write `{name: tensor}` as torch.save would: a zip of data.pkl, one storage per tensor, and the
 * version records. Atomic: the file appears complete or not at all.
 */
export function writeTorchFile(file: string, tensors: TensorToSave[]): void {
  const seen = new Set<string>();
  for (const t of tensors) {
    if (seen.has(t.name)) throw new EngineError(`${file}: duplicate tensor name "${t.name}"`);
    seen.add(t.name);
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== numel) throw new EngineError(`${file}: tensor "${t.name}" has ${t.data.length} values for shape [${t.shape}]`);
  }
  // torch names the archive folder after the file; any name loads.
  const archive = path.basename(file).replace(/\.[^.]*$/, '').replace(/[^A-Za-z0-9_-]/g, '_') || 'archive';
  const pkl = pickleTensorDict(tensors.map((t, i) => ({ name: t.name, dtype: t.dtype ?? 'float32', shape: t.shape, storageKey: String(i) })));
  const storages = tensors.map((t, i) => {
    const dtype = t.dtype ?? 'float32';
    const stored = dtype === 'float16' ? f32ToF16(t.data) : dtype === 'bfloat16' ? f32ToBf16(t.data) : t.data;
    return { name: `${archive}/data/${i}`, data: new Uint8Array(stored.buffer, stored.byteOffset, stored.byteLength) };
  });
  const text = (s: string) => new TextEncoder().encode(s);
  writeZip(file, [
    { name: `${archive}/data.pkl`, data: pkl },
    { name: `${archive}/.format_version`, data: text('1') },
    { name: `${archive}/.storage_alignment`, data: text('64') },
    { name: `${archive}/byteorder`, data: text('little') },
    ...storages,
    { name: `${archive}/version`, data: text('3\n') },
  ]);
}
