// Branded ids: a RunId cannot be passed where a DatasetId is expected, although both are strings at run time.

import { randomBytes } from 'node:crypto';

declare const brand: unique symbol;
type Brand<T, Name extends string> = T & { readonly [brand]: Name };

export type ModelId = Brand<string, 'ModelId'>;
export type DatasetId = Brand<string, 'DatasetId'>;
/** Examples use SQLite's integer rowid so that the FTS5 index can point at them. */
export type ExampleId = Brand<number, 'ExampleId'>;
export type RunId = Brand<string, 'RunId'>;
export type CheckpointId = Brand<string, 'CheckpointId'>;
export type EvaluationId = Brand<string, 'EvaluationId'>;
export type SweepId = Brand<string, 'SweepId'>;
export type ComparisonId = Brand<string, 'ComparisonId'>;
export type ComparisonItemId = Brand<number, 'ComparisonItemId'>;
export type ChatId = Brand<string, 'ChatId'>;
export type MessageId = Brand<number, 'MessageId'>;

/** A new random id such as `run_3f9c0a7d12e45b68`: the prefix says what it names when it shows up in a log. */
export function newId<T extends string>(prefix: string): T {
  return `${prefix}_${randomBytes(8).toString('hex')}` as T;
}
