// The ZIP container that torch.save writes (PKWARE APPNOTE 6.3), read and written by hand.
//
// Reading goes through the central directory only (torch writes local headers with zero sizes and
// a trailing data descriptor), supports ZIP64 (a 7B checkpoint is 13 GB), stored and deflated
// entries, and reads each entry from disk on demand at its offset, so a large checkpoint never
// sits in memory whole. CRC-32 is checked on every read.
//
// Writing produces what torch's own writer produces closely enough for torch.load: stored
// (uncompressed) entries whose data starts on a 64-byte boundary (torch pads the local header's
// extra field, id "FB", for the same reason: storages can then be memory-mapped).

import fs from 'node:fs';
import zlib from 'node:zlib';
import { EngineError } from '../engine/errors.js';
import { writeAtomically } from '../engine/safetensors.js';

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const METHOD_STORED = 0;
const METHOD_DEFLATE = 8;
const U32_MAX = 0xffffffff;
const U16_MAX = 0xffff;

export interface ZipEntry {
  name: string;
  method: number; // 0 stored, 8 deflate
  compressedSize: number;
  size: number;
  crc32: number;
  localHeaderOffset: number;
}

function readAt(fd: number, length: number, position: number): Buffer {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, buf, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  if (done !== length) throw new Error(`unexpected end of file at byte ${position + done}`);
  return buf;
}

/** A ZIP file opened for random access. Call close() when done. */
export class ZipReader {
  private readonly byName: Map<string, ZipEntry>;

  private constructor(
    readonly path: string,
    private fd: number | null,
    private readonly size: number,
    entries: ZipEntry[],
  ) {
    this.byName = new Map(entries.map((e) => [e.name, e]));
  }

  static open(path: string): ZipReader {
    let fd: number;
    try {
      fd = fs.openSync(path, 'r');
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new EngineError(`${path}: ${err.code === 'ENOENT' ? 'file not found' : `cannot open (${err.message})`}`);
    }
    try {
      const size = fs.fstatSync(fd).size;
      return new ZipReader(path, fd, size, readCentralDirectory(fd, size, path));
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  entries(): ZipEntry[] {
    return [...this.byName.values()];
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  entry(name: string): ZipEntry {
    const e = this.byName.get(name);
    if (!e) throw new EngineError(`${this.path}: the archive has no entry "${name}"`);
    return e;
  }

  /** The uncompressed bytes of one entry, CRC-checked. */
  read(name: string): Buffer {
    const e = this.entry(name);
    const fd = this.handle();
    const bad = (why: string) => new EngineError(`${this.path}: entry "${name}" is damaged: ${why}`);
    let local: Buffer;
    try {
      local = readAt(fd, 30, e.localHeaderOffset);
    } catch {
      throw bad(`its local header at byte ${e.localHeaderOffset} is past the end of the file`);
    }
    if (local.readUInt32LE(0) !== SIG_LOCAL) throw bad(`no local header signature at byte ${e.localHeaderOffset}`);
    const dataStart = e.localHeaderOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
    if (dataStart + e.compressedSize > this.size) {
      throw bad(`its ${e.compressedSize} bytes at byte ${dataStart} run past the end of the ${this.size}-byte file (truncated download?)`);
    }
    const raw = readAt(fd, e.compressedSize, dataStart);
    let data: Buffer;
    if (e.method === METHOD_STORED) data = raw;
    else if (e.method === METHOD_DEFLATE) {
      try {
        data = zlib.inflateRawSync(raw);
      } catch (err) {
        throw bad(`cannot inflate (${(err as Error).message})`);
      }
    } else throw bad(`compression method ${e.method} is not supported (only stored and deflate)`);
    if (data.length !== e.size) throw bad(`it holds ${data.length} bytes, the directory says ${e.size}`);
    if (zlib.crc32(data) >>> 0 !== e.crc32) throw bad('CRC-32 mismatch');
    return data;
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }

  private handle(): number {
    if (this.fd === null) throw new Error(`${this.path}: ZipReader used after close()`);
    return this.fd;
  }
}

function readCentralDirectory(fd: number, size: number, path: string): ZipEntry[] {
  const bad = (why: string) => new EngineError(`${path} is not a valid ZIP archive: ${why}`);
  // The end-of-central-directory record is 22 bytes plus a comment of at most 64 KiB.
  const tailLength = Math.min(size, 22 + U16_MAX);
  if (size < 22) throw bad(`it is only ${size} bytes long`);
  const tail = readAt(fd, tailLength, size - tailLength);
  let eocd = -1;
  for (let i = tailLength - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === SIG_EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw bad('no end-of-central-directory record (truncated file, or not a ZIP)');
  let count = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  const eocdPosition = size - tailLength + eocd;
  // A ZIP64 locator, when present, sits right before the classic record and overrides its fields
  // (torch always writes one).
  const locator = eocdPosition >= 20 ? readAt(fd, 20, eocdPosition - 20) : null;
  if (locator && locator.readUInt32LE(0) === SIG_ZIP64_LOCATOR) {
    const recordPosition = Number(locator.readBigUInt64LE(8));
    const record = readAt(fd, 56, recordPosition);
    if (record.readUInt32LE(0) !== SIG_ZIP64_EOCD) throw bad('the ZIP64 locator points at no ZIP64 end record');
    count = Number(record.readBigUInt64LE(32));
    cdSize = Number(record.readBigUInt64LE(40));
    cdOffset = Number(record.readBigUInt64LE(48));
  } else if (count === U16_MAX || cdSize === U32_MAX || cdOffset === U32_MAX) {
    throw bad('the directory needs ZIP64 fields but there is no ZIP64 record');
  }
  if (cdOffset + cdSize > size) throw bad(`the central directory (${cdSize} bytes at ${cdOffset}) runs past the end of the file (truncated?)`);
  const cd = readAt(fd, cdSize, cdOffset);
  const entries: ZipEntry[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || cd.readUInt32LE(p) !== SIG_CENTRAL) throw bad(`central directory entry #${i} is malformed`);
    const method = cd.readUInt16LE(p + 10);
    const crc32 = cd.readUInt32LE(p + 16);
    let compressedSize = cd.readUInt32LE(p + 20);
    let uncompressedSize = cd.readUInt32LE(p + 24);
    const nameLength = cd.readUInt16LE(p + 28);
    const extraLength = cd.readUInt16LE(p + 30);
    const commentLength = cd.readUInt16LE(p + 32);
    let localHeaderOffset = cd.readUInt32LE(p + 42);
    const name = cd.toString('utf8', p + 46, p + 46 + nameLength);
    // ZIP64 extended information: the 64-bit values, in this order, for each field that is 0xFFFFFFFF.
    let q = p + 46 + nameLength;
    const extraEnd = q + extraLength;
    while (q + 4 <= extraEnd) {
      const id = cd.readUInt16LE(q);
      const len = cd.readUInt16LE(q + 2);
      if (id === 0x0001) {
        let r = q + 4;
        const next = () => {
          const v = Number(cd.readBigUInt64LE(r));
          r += 8;
          return v;
        };
        if (uncompressedSize === U32_MAX) uncompressedSize = next();
        if (compressedSize === U32_MAX) compressedSize = next();
        if (localHeaderOffset === U32_MAX) localHeaderOffset = next();
      }
      q += 4 + len;
    }
    entries.push({ name, method, compressedSize, size: uncompressedSize, crc32, localHeaderOffset });
    p = extraEnd + commentLength;
  }
  return entries;
}

// ---------------------------------------------------------------------------------------------
// Writing

export interface ZipFileToWrite {
  name: string;
  data: Uint8Array;
}

const ALIGNMENT = 64;

/**
 * Write `files` as a stored ZIP archive, each entry's data aligned to 64 bytes, atomically
 * (temp file + rename). Archives over 4 GiB would need ZIP64 and are refused: adapters are small.
 */
export function writeZip(path: string, files: ZipFileToWrite[]): void {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const f of files) {
    const name = Buffer.from(f.name, 'utf8');
    const crc = zlib.crc32(f.data) >>> 0;
    // Pad the extra field so that the data after the local header starts on the alignment.
    const headerEnd = offset + 30 + name.length;
    const padding = (ALIGNMENT - ((headerEnd + 4) % ALIGNMENT)) % ALIGNMENT;
    const extra = Buffer.alloc(4 + padding, 'Z'.charCodeAt(0));
    extra.write('FB', 0, 'latin1');
    extra.writeUInt16LE(padding, 2);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(SIG_LOCAL, 0);
    local.writeUInt16LE(20, 4); // version needed: 2.0
    local.writeUInt16LE(0x0800, 6); // names are UTF-8
    local.writeUInt16LE(METHOD_STORED, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(f.data.length, 18);
    local.writeUInt32LE(f.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(extra.length, 28);
    const entry = Buffer.alloc(46);
    entry.writeUInt32LE(SIG_CENTRAL, 0);
    entry.writeUInt16LE(20, 4);
    entry.writeUInt16LE(20, 6);
    entry.writeUInt16LE(0x0800, 8);
    entry.writeUInt16LE(METHOD_STORED, 10);
    entry.writeUInt32LE(crc, 16);
    entry.writeUInt32LE(f.data.length, 20);
    entry.writeUInt32LE(f.data.length, 24);
    entry.writeUInt16LE(name.length, 28);
    entry.writeUInt32LE(offset, 42);
    central.push(entry, name);
    parts.push(local, name, extra, Buffer.from(f.data.buffer, f.data.byteOffset, f.data.byteLength));
    offset += 30 + name.length + extra.length + f.data.length;
  }
  const cdSize = central.reduce((n, b) => n + b.length, 0);
  if (offset + cdSize > U32_MAX || files.length >= U16_MAX) throw new EngineError(`${path}: the archive would need ZIP64 (over 4 GiB or 65535 entries)`);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(SIG_EOCD, 0);
  eocd.writeUInt16LE(files.length, 8);
  eocd.writeUInt16LE(files.length, 10);
  eocd.writeUInt32LE(cdSize, 12);
  eocd.writeUInt32LE(offset, 16);
  writeAtomically(path, (fd) => {
    for (const b of [...parts, ...central, eocd]) {
      let done = 0;
      while (done < b.length) done += fs.writeSync(fd, b, done, b.length - done);
    }
  });
}
