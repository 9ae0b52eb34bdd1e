// A safetensors writer for checkpoints too big to hold in memory: the header is written from the
// tensors' names, shapes and dtypes alone, then each tensor's data is produced and written one at a
// time. Same layout rules as engine/safetensors.ts's writeSafetensors (tensors ordered by name,
// header padded with spaces to a multiple of 8), atomic through writeAtomically.

import fs from 'node:fs';
import { EngineError } from '../engine/errors.js';
import { f32ToBf16, f32ToF16 } from '../engine/half.js';
import { writeAtomically, type WritableDtype } from '../engine/safetensors.js';

export interface PlannedTensor {
  name: string;
  shape: number[];
  dtype: WritableDtype;
}

const BYTES: Record<WritableDtype, number> = { F32: 4, F16: 2, BF16: 2 };

export function plannedBytes(t: PlannedTensor): number {
  return t.shape.reduce((a, b) => a * b, 1) * BYTES[t.dtype];
}

/**
 * Write `tensors` to `path`, asking `produce(name)` for each one's float32 data in file order.
 * Only one tensor's data is alive at a time.
 */
export function writeSafetensorsStreaming(
  path: string,
  tensors: PlannedTensor[],
  produce: (t: PlannedTensor) => Float32Array,
  metadata: Record<string, string> = { format: 'pt' },
): void {
  const ordered = [...tensors].sort((x, y) => Buffer.compare(Buffer.from(x.name), Buffer.from(y.name)));
  const fields: string[] = [];
  const meta = Object.keys(metadata).sort().map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`);
  if (meta.length > 0) fields.push(`"__metadata__":{${meta.join(',')}}`);
  let offset = 0;
  for (const t of ordered) {
    const end = offset + plannedBytes(t);
    fields.push(`${JSON.stringify(t.name)}:{"dtype":"${t.dtype}","shape":${JSON.stringify(t.shape)},"data_offsets":[${offset},${end}]}`);
    offset = end;
  }
  let header = Buffer.from(`{${fields.join(',')}}`, 'utf8');
  header = Buffer.concat([header, Buffer.alloc((8 - (header.length % 8)) % 8, 0x20)]);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(header.length));
  const writeAll = (fd: number, bytes: Uint8Array) => {
    let done = 0;
    while (done < bytes.length) done += fs.writeSync(fd, bytes, done, bytes.length - done);
  };
  writeAtomically(path, (fd) => {
    writeAll(fd, prefix);
    writeAll(fd, header);
    for (const t of ordered) {
      const data = produce(t);
      const count = t.shape.reduce((a, b) => a * b, 1);
      if (data.length !== count) throw new EngineError(`${path}: tensor "${t.name}" produced ${data.length} values for shape [${t.shape}]`);
      const stored = t.dtype === 'F16' ? f32ToF16(data) : t.dtype === 'BF16' ? f32ToBf16(data) : data;
      writeAll(fd, new Uint8Array(stored.buffer, stored.byteOffset, stored.byteLength));
    }
  });
}
