// Flag parsing shared by the CLI commands (node:util parseArgs, with errors in the CLI's words).

import { parseArgs } from 'node:util';
import { EngineError } from '../engine/errors.js';

export interface IO {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

export type Flags = Record<string, string | boolean | string[] | undefined>;

export function parseFlags(args: string[], spec: Record<string, 'string' | 'boolean'>, multiple: string[] = []): Flags {
  const options = Object.fromEntries(Object.entries(spec).map(([name, type]) => [name, { type, multiple: multiple.includes(name) }]));
  try {
    return parseArgs({ args, options, allowPositionals: false, strict: true }).values as Flags;
  } catch (e) {
    throw new EngineError((e as Error).message.replace(/^TypeError \[[A-Z_]+\]: /, ''));
  }
}

export function flag(flags: Flags, name: string): string | undefined {
  const v = flags[name];
  return typeof v === 'string' ? v : undefined;
}

export function requireFlag(flags: Flags, name: string): string {
  const v = flag(flags, name);
  if (v === undefined || v === '') throw new EngineError(`missing --${name}`);
  return v;
}

export function numberFlag(flags: Flags, name: string, kind: 'int' | 'number'): number | undefined {
  const raw = flag(flags, name);
  if (raw === undefined) return undefined;
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(v) || (kind === 'int' && !Number.isInteger(v))) {
    throw new EngineError(`--${name} must be ${kind === 'int' ? 'an integer' : 'a number'}, got "${raw}"`);
  }
  return v;
}
