// A small pickle virtual machine for the records that torch.save writes, and a writer for them.
//
// Pickle is a stack language whose GLOBAL opcode names any Python callable and whose REDUCE opcode
// calls it: loading an untrusted pickle with Python's pickle runs arbitrary code. This VM never
// calls anything. It resolves GLOBAL against a fixed allow-list of the names a tensor checkpoint
// uses (torch._utils._rebuild_tensor_v2, the storage types, collections.OrderedDict, ...) and
// refuses every other name with an error naming it, like torch.load(weights_only=True).
//
// Opcodes follow CPython's Lib/pickle.py (protocols 0-5, the binary forms torch uses; the text
// forms of protocol 0 that carry Python source-like literals are refused).

import { EngineError } from '../engine/errors.js';

/** A tensor record: where its elements are, not the elements themselves. */
export interface TensorRecord {
  kind: 'tensor';
  storage: StorageRecord;
  offset: number; // in elements
  shape: number[];
  stride: number[];
}

export type TorchDtype = 'float32' | 'float16' | 'bfloat16' | 'float64' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

/** A storage named by a persistent id ('storage', type, key, location, numel). */
export interface StorageRecord {
  kind: 'storage';
  dtype: TorchDtype;
  key: string; // the archive entry data/<key>
  location: string;
  numel: number;
}

export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}

/** An object of an allow-listed plain class (argparse.Namespace): its attributes, nothing else. */
export class PyObject {
  constructor(
    readonly className: string,
    readonly attributes: Map<PyKey, PyValue> = new Map(),
  ) {}
}

export type PyKey = string | number | bigint | boolean | null;
export type PyValue =
  | PyKey
  | Uint8Array
  | PyValue[]
  | PyTuple
  | Map<PyKey, PyValue>
  | PyObject
  | TensorRecord
  | StorageRecord
  | PyGlobal;

/** A resolved GLOBAL: an allow-listed name and what calling it means here. */
export interface PyGlobal {
  kind: 'global';
  name: string;
}

const STORAGE_TYPES: Record<string, TorchDtype> = {
  FloatStorage: 'float32',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  DoubleStorage: 'float64',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
};

/** Names a checkpoint may refer to. Anything else is refused. */
const ALLOWED_GLOBALS = new Set([
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_tensor',
  'torch._utils._rebuild_parameter',
  'torch._utils._rebuild_parameter_with_state',
  'argparse.Namespace', // the `args` of a full training checkpoint: a plain attribute bag
  ...Object.keys(STORAGE_TYPES).map((t) => `torch.${t}`),
]);

export interface UnpickleOptions {
  /** Names the data in error messages, e.g. "adapter.pth: data.pkl". */
  source: string;
}

const OPCODE_NAMES: Record<number, string> = {
  0x69: 'INST', 0x6f: 'OBJ', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4', 0x50: 'PERSID', 0x49: 'INT', 0x4c: 'LONG',
  0x46: 'FLOAT', 0x53: 'STRING', 0x56: 'UNICODE', 0x96: 'BYTEARRAY8', 0x97: 'NEXT_BUFFER', 0x98: 'READONLY_BUFFER',
};

/** Run the pickle in `data` and return the object it builds. */
export function unpickle(data: Uint8Array, opts: UnpickleOptions): PyValue {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const text = new TextDecoder('utf-8', { fatal: true });
  let pos = 0;
  const stack: PyValue[] = [];
  const marks: number[] = [];
  const memo = new Map<number, PyValue>();
  const fail = (why: string, at = pos): never => {
    throw new EngineError(`${opts.source}: ${why} (pickle byte ${at})`);
  };
  const need = (n: number) => {
    if (pos + n > data.length) fail(`the pickle ends in the middle of an opcode (needs ${n} more bytes)`);
  };
  const u8 = () => (need(1), data[pos++]);
  const u16 = () => (need(2), (pos += 2), view.getUint16(pos - 2, true));
  const u32 = () => (need(4), (pos += 4), view.getUint32(pos - 4, true));
  const i32 = () => (need(4), (pos += 4), view.getInt32(pos - 4, true));
  const u64 = () => {
    need(8);
    pos += 8;
    const v = view.getBigUint64(pos - 8, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail('a length field is too large');
    return Number(v);
  };
  const bytes = (n: number) => {
    need(n);
    pos += n;
    return data.subarray(pos - n, pos);
  };
  const str = (n: number) => {
    try {
      return text.decode(bytes(n));
    } catch {
      return fail('a string is not valid UTF-8');
    }
  };
  const line = () => {
    const end = data.indexOf(0x0a, pos);
    if (end < 0) fail('a text field has no terminating newline');
    const s = new TextDecoder('latin1').decode(data.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const pop = (): PyValue => (stack.length === 0 ? fail('stack underflow') : stack.pop()!);
  const top = (): PyValue => (stack.length === 0 ? fail('stack underflow') : stack[stack.length - 1]);
  const popMark = (): PyValue[] => {
    if (marks.length === 0) fail('an opcode needs a MARK but there is none');
    const at = marks.pop()!;
    return stack.splice(at);
  };
  const littleEndianInt = (b: Uint8Array): number | bigint => {
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const resolveGlobal = (module: string, name: string): PyGlobal => {
    const full = `${module}.${name}`;
    if (!ALLOWED_GLOBALS.has(full)) {
      fail(`the file refers to the Python name "${full}", which is not part of a tensor checkpoint; refusing to load it (a pickle can run code through such names)`);
    }
    return { kind: 'global', name: full };
  };
  const asKey = (k: PyValue, where: string): PyKey => {
    if (k === null || ['string', 'number', 'bigint', 'boolean'].includes(typeof k)) return k as PyKey;
    if (k instanceof PyTuple) return JSON.stringify(k.items.map((x) => (typeof x === 'bigint' ? x.toString() : x)));
    return fail(`${where}: a dictionary key of an unsupported kind`);
  };
  const setItems = (target: PyValue, items: PyValue[]) => {
    if (!(target instanceof Map)) fail('SETITEM(S) on something that is not a dictionary');
    const map = target as Map<PyKey, PyValue>;
    if (items.length % 2 !== 0) fail('SETITEMS with an odd number of values');
    for (let i = 0; i < items.length; i += 2) map.set(asKey(items[i], 'SETITEMS'), items[i + 1]);
  };
  const call = (fn: PyValue, args: PyValue, at: number): PyValue => {
    if (!(args instanceof PyTuple)) return fail('REDUCE arguments are not a tuple', at);
    if (typeof fn !== 'object' || fn === null || (fn as PyGlobal).kind !== 'global') return fail('REDUCE on something that is not a resolved name', at);
    return applyGlobal((fn as PyGlobal).name, args.items, (why) => fail(why, at));
  };

  for (;;) {
    const at = pos;
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) fail('pickle protocol above 5');
        break;
      case 0x95: // FRAME: a length prefix only
        u64();
        break;
      case 0x2e: // STOP
        if (stack.length !== 1) fail(`the pickle ends with ${stack.length} values on the stack`);
        return stack[0];
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x30: // POP
        if (marks.length > 0 && marks[marks.length - 1] === stack.length) marks.pop();
        else pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4a: // BININT
        stack.push(i32());
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x8a: // LONG1
        stack.push(littleEndianInt(bytes(u8())));
        break;
      case 0x8b: // LONG4
        stack.push(littleEndianInt(bytes(u32())));
        break;
      case 0x47: // BINFLOAT: big-endian float64
        need(8);
        stack.push(view.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x58: // BINUNICODE
        stack.push(str(u32()));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(str(u8()));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(str(u64()));
        break;
      case 0x54: // BINSTRING (Python 2 str): latin-1 text
        stack.push(new TextDecoder('latin1').decode(bytes(i32())));
        break;
      case 0x55: // SHORT_BINSTRING
        stack.push(new TextDecoder('latin1').decode(bytes(u8())));
        break;
      case 0x42: // BINBYTES
        stack.push(bytes(u32()).slice());
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(bytes(u8()).slice());
        break;
      case 0x8e: // BINBYTES8
        stack.push(bytes(u64()).slice());
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(new PyTuple([]));
        break;
      case 0x74: // TUPLE
        stack.push(new PyTuple(popMark()));
        break;
      case 0x85: // TUPLE1
        stack.push(new PyTuple([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        stack.push(new PyTuple([pop(), b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        stack.push(new PyTuple([pop(), b, c]));
        break;
      }
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x61: {
        // APPEND
        const v = pop();
        const list = top();
        if (!Array.isArray(list)) fail('APPEND to something that is not a list');
        (list as PyValue[]).push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        const list = top();
        if (!Array.isArray(list)) fail('APPENDS to something that is not a list');
        (list as PyValue[]).push(...items);
        break;
      }
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x64: {
        // DICT
        const map = new Map<PyKey, PyValue>();
        setItems(map, popMark());
        stack.push(map);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x70: // PUT (text index)
        memo.set(Number(line()), top());
        break;
      case 0x68: // BINGET
      case 0x6a: // LONG_BINGET
      case 0x67: {
        // GET
        const index = op === 0x68 ? u8() : op === 0x6a ? u32() : Number(line());
        if (!memo.has(index)) fail(`memo entry ${index} is used before it is set`, at);
        stack.push(memo.get(index)!);
        break;
      }
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = line();
        stack.push(resolveGlobal(module, line()));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings', at);
        stack.push(resolveGlobal(module as string, name as string));
        break;
      }
      case 0x52: {
        // REDUCE: fn(*args)
        const args = pop();
        const fn = pop();
        stack.push(call(fn, args, at));
        break;
      }
      case 0x81: {
        // NEWOBJ: cls.__new__(cls, *args)
        const args = pop();
        const cls = pop();
        stack.push(call(cls, args, at));
        break;
      }
      case 0x92: {
        // NEWOBJ_EX: cls.__new__(cls, *args, **kwargs)
        pop(); // kwargs: none of the allowed classes take any
        const args = pop();
        const cls = pop();
        stack.push(call(cls, args, at));
        break;
      }
      case 0x62: {
        // BUILD: obj.__setstate__(state) or obj.__dict__.update(state)
        const state = pop();
        const obj = top();
        build(obj, state, (why) => fail(why, at));
        break;
      }
      case 0x51: {
        // BINPERSID: the storage behind a tensor
        stack.push(persistentLoad(pop(), (why) => fail(why, at)));
        break;
      }
      default: {
        const name = OPCODE_NAMES[op];
        fail(`opcode ${name ?? `0x${op.toString(16).padStart(2, '0')}`} is not used by tensor checkpoints; refusing the file`, at);
      }
    }
  }
}

function applyGlobal(name: string, args: PyValue[], fail: (why: string) => never): PyValue {
  switch (name) {
    case 'collections.OrderedDict': {
      const map = new Map<PyKey, PyValue>();
      if (args.length === 1 && Array.isArray(args[0])) {
        for (const pair of args[0] as PyValue[]) {
          if (!(pair instanceof PyTuple) || pair.items.length !== 2) fail('OrderedDict items must be pairs');
          map.set((pair as PyTuple).items[0] as PyKey, (pair as PyTuple).items[1]);
        }
      } else if (args.length !== 0) fail('OrderedDict called with unexpected arguments');
      return map;
    }
    case 'torch._utils._rebuild_tensor_v2':
    case 'torch._utils._rebuild_tensor':
      // (storage, storage_offset, size, stride, [requires_grad, backward_hooks, [metadata]])
      return tensorRecord(args, fail);
    case 'torch._utils._rebuild_parameter':
    case 'torch._utils._rebuild_parameter_with_state': {
      // (data, requires_grad, backward_hooks[, state]): a Parameter is its data
      const data = args[0] as TensorRecord;
      if (typeof data !== 'object' || data === null || data.kind !== 'tensor') fail(`${name} without a tensor`);
      return data;
    }
    case 'argparse.Namespace':
      return new PyObject(name);
    default:
      return fail(`calling "${name}" is not supported`);
  }
}

function build(obj: PyValue, state: PyValue, fail: (why: string) => never): void {
  if (obj instanceof PyObject) {
    if (!(state instanceof Map)) fail(`BUILD state of ${obj.className} is not a dictionary`);
    for (const [k, v] of state as Map<PyKey, PyValue>) obj.attributes.set(k, v);
    return;
  }
  // A state_dict is an OrderedDict with a `_metadata` attribute (module versions): not tensor data.
  if (obj instanceof Map) return;
  // A tensor's BUILD carries Python-level attributes (rare); the data is unaffected.
  if (typeof obj === 'object' && obj !== null && (obj as TensorRecord).kind === 'tensor') return;
  fail('BUILD on an object of an unsupported kind');
}

function persistentLoad(pid: PyValue, fail: (why: string) => never): StorageRecord {
  if (!(pid instanceof PyTuple)) return fail('a persistent id that is not a tuple');
  const [tag, type, key, location, numel] = pid.items;
  if (tag !== 'storage') return fail(`a persistent id of kind ${JSON.stringify(tag)}; only tensor storages are supported`);
  const typeName = (type as PyGlobal | null)?.kind === 'global' ? (type as PyGlobal).name.replace(/^torch\./, '') : '';
  const dtype = STORAGE_TYPES[typeName];
  if (!dtype) return fail(`a storage of unsupported type ${JSON.stringify(typeName)}`);
  if (typeof key !== 'string' || !/^[0-9A-Za-z_.-]+$/.test(key)) return fail(`a storage key ${JSON.stringify(key)} that is not a plain name`);
  if (typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0) return fail(`storage ${key} has an invalid element count`);
  return { kind: 'storage', dtype, key, location: String(location), numel };
}

function tensorRecord(args: PyValue[], fail: (why: string) => never): TensorRecord {
  const [storage, offset, size, stride] = args;
  if (typeof storage !== 'object' || storage === null || (storage as StorageRecord).kind !== 'storage') fail('a tensor whose storage is not a storage record');
  const ints = (v: PyValue, what: string): number[] => {
    if (!(v instanceof PyTuple) || !v.items.every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0)) {
      return fail(`a tensor ${what} that is not a tuple of non-negative integers`);
    }
    return v.items as number[];
  };
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) fail('a tensor with an invalid storage offset');
  const shape = ints(size, 'size');
  const strides = ints(stride, 'stride');
  if (shape.length !== strides.length) fail('a tensor whose size and stride differ in length');
  return { kind: 'tensor', storage: storage as StorageRecord, offset: offset as number, shape, stride: strides };
}

// ---------------------------------------------------------------------------------------------
// Writing: a flat {name: tensor} dictionary, the way torch.save(dict) pickles it (protocol 2).

export interface TensorToPickle {
  name: string;
  dtype: TorchDtype;
  shape: number[];
  storageKey: string; // archive entry data/<key>
}

const STORAGE_OF: Record<string, string> = Object.fromEntries(Object.entries(STORAGE_TYPES).map(([t, d]) => [d, t]));

/**
 * The data.pkl of torch.save({name: tensor, ...}): each value is
 * _rebuild_tensor_v2(persistent storage, 0, size, contiguous stride, False, OrderedDict()).
 * torch.load(..., weights_only=True) accepts exactly these names.
 */
export function pickleTensorDict(tensors: TensorToPickle[]): Uint8Array {
  const out: number[] = [];
  const byte = (...b: number[]) => out.push(...b);
  const uint = (v: number, n: number) => {
    for (let i = 0; i < n; i++) byte((v >>> (8 * i)) & 0xff);
  };
  const unicode = (s: string) => {
    const b = new TextEncoder().encode(s);
    byte(0x58);
    uint(b.length, 4);
    byte(...b);
  };
  const int = (v: number) => {
    if (v < 0 || !Number.isSafeInteger(v)) throw new Error(`pickleTensorDict: cannot write ${v}`);
    if (v < 0x100) byte(0x4b, v);
    else if (v < 0x10000) byte(0x4d, v & 0xff, v >>> 8);
    else if (v < 0x80000000) {
      byte(0x4a);
      uint(v, 4);
    } else {
      // LONG1 with 8 bytes little-endian, signed (top bit clear for v < 2^53)
      byte(0x8a, 8);
      let big = BigInt(v);
      for (let i = 0; i < 8; i++, big >>= 8n) byte(Number(big & 0xffn));
    }
  };
  const global = (module: string, name: string) => byte(0x63, ...new TextEncoder().encode(`${module}\n${name}\n`));
  const tuple = (items: number[]) => {
    byte(0x28); // MARK
    items.forEach(int);
    byte(0x74); // TUPLE
  };
  byte(0x80, 2); // PROTO 2
  byte(0x7d); // EMPTY_DICT
  if (tensors.length > 0) byte(0x28); // MARK
  for (const t of tensors) {
    const storageType = STORAGE_OF[t.dtype];
    if (!storageType) throw new Error(`pickleTensorDict: no storage type for ${t.dtype}`);
    const numel = t.shape.reduce((a, b) => a * b, 1);
    const stride = t.shape.map((_, i) => t.shape.slice(i + 1).reduce((a, b) => a * b, 1));
    unicode(t.name);
    global('torch._utils', '_rebuild_tensor_v2');
    byte(0x28); // MARK: the argument tuple
    byte(0x28); // MARK: the persistent id
    unicode('storage');
    global('torch', storageType);
    unicode(t.storageKey);
    unicode('cpu');
    int(numel);
    byte(0x74); // TUPLE
    byte(0x51); // BINPERSID
    int(0); // storage offset
    tuple(t.shape);
    tuple(stride);
    byte(0x89); // requires_grad = False
    global('collections', 'OrderedDict');
    byte(0x29, 0x52); // EMPTY_TUPLE, REDUCE: backward_hooks = OrderedDict()
    byte(0x74); // TUPLE
    byte(0x52); // REDUCE
  }
  if (tensors.length > 0) byte(0x75); // SETITEMS
  byte(0x2e); // STOP
  return Uint8Array.from(out);
}
