// `adapter-studio dataset ...`: dataset curation from the command line, over the same functions the app uses.

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import {
  assignSplits,
  DatasetImportError,
  exportDataset,
  findExactDuplicates,
  findNearDuplicates,
  formatIssue,
  GeneratorError,
  importDataset,
  removeDuplicates,
  type DuplicateGroup,
  type FieldMap,
  type ImportReport,
} from '../datasets/index.js';
import { EXPORT_IMAGES_DIR } from '../datasets/export.js';
import { MultipleChoiceError, resolveTemplate, type MultipleChoiceTemplate } from '../datasets/multiple-choice.js';
import { FIELD_ALIASES } from '../datasets/records.js';
import { SPLITS, type Split } from '../store/datasets.js';
import { StoreError } from '../store/errors.js';
import { defaultWorkspaceDir, openWorkspace, type Workspace } from '../store/workspace.js';

export interface DatasetCommandIO {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

export const DATASET_USAGE = `adapter-studio dataset <command> [flags]

Commands:
  import PATH       [--name NAME | --into DATASET] [--format auto|json|jsonl|csv|tsv|parquet|scienceqa]
                    [--shape auto|alpaca|conversation|scienceqa] [--conversation last-turn|each-turn]
                    [--map FIELD=KEY]... [--delimiter C] [--tag TAG]... [--split train|val|test]
                    [--image-root DIR] [--max-image-pixels N] [--mc-template FILE.json]
                    [--max-field-chars N] [--valid-only]
                    PATH is a file (.json, .jsonl, .csv, .tsv, .parquet) or a folder: ScienceQA's
                    (problems.json, pid_splits.json, images/) or parquet shards (one dataset, splits from
                    the shard names). Image paths in records are relative to the file (or --image-root).
                    Any invalid record refuses the whole import unless --valid-only. --split puts every
                    record that names no split of its own into that split (e.g. a held-out file as test).
                    --mc-template: a JSON object of multiple-choice template fields (prompt, option,
                    optionSeparator, emptyContext, answer, answerCue; see docs/STORE.md).
  list [DATASET]    all datasets with example counts; with DATASET, its version history
  export DATASET FILE  [--format json|jsonl] [--split train|val|test] [--version N] [--meta]
  dedupe DATASET    [--near] [--threshold X] [--skip KEEP,...] [--apply]   list duplicate groups; --apply deletes all but the first of each group not skipped
  split DATASET     [--train X] [--val X] [--test X] [--seed N]   seeded train/val/test assignment
  undo DATASET      revert the latest change

Every command takes --workspace DIR (default $ADAPTER_STUDIO_WORKSPACE or ~/.adapter-studio) and --json.
DATASET is a dataset id or name. FIELD is one of instruction, input, output, tags, split, image.
`;

class UsageError extends Error {}

type Options = NonNullable<ParseArgsConfig['options']>;

const COMMON: Options = { workspace: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } };

const SUBCOMMANDS: Record<string, { options: Options; positionals: [number, number]; run: (ws: Workspace, a: Parsed, out: Output) => Promise<number> | number }> = {
  import: {
    options: {
      name: { type: 'string' },
      into: { type: 'string' },
      format: { type: 'string' },
      shape: { type: 'string' },
      conversation: { type: 'string' },
      map: { type: 'string', multiple: true },
      delimiter: { type: 'string' },
      tag: { type: 'string', multiple: true },
      'max-field-chars': { type: 'string' },
      'valid-only': { type: 'boolean' },
      split: { type: 'string' },
      'image-root': { type: 'string' },
      'max-image-pixels': { type: 'string' },
      'mc-template': { type: 'string' },
    },
    positionals: [1, 1],
    run: runImport,
  },
  list: { options: {}, positionals: [0, 1], run: runList },
  export: {
    options: { format: { type: 'string' }, split: { type: 'string' }, version: { type: 'string' }, meta: { type: 'boolean' } },
    positionals: [2, 2],
    run: runExport,
  },
  dedupe: {
    options: { near: { type: 'boolean' }, threshold: { type: 'string' }, apply: { type: 'boolean' }, skip: { type: 'string' } },
    positionals: [1, 1],
    run: runDedupe,
  },
  split: {
    options: { train: { type: 'string' }, val: { type: 'string' }, test: { type: 'string' }, seed: { type: 'string' } },
    positionals: [1, 1],
    run: runSplit,
  },
  undo: { options: {}, positionals: [1, 1], run: runUndo },
};

interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

interface Output {
  json: boolean;
  /** Prints `text` in text mode, or `data` as one JSON document in --json mode. */
  result: (text: string, data: unknown) => void;
  stderr: (s: string) => void;
}

export async function datasetCommand(args: string[], io: DatasetCommandIO): Promise<number> {
  const [name, ...rest] = args;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    io.stdout(DATASET_USAGE);
    return name ? 0 : 2;
  }
  const sub = SUBCOMMANDS[name];
  if (!sub) {
    io.stderr(`unknown dataset command "${name}"\n\n${DATASET_USAGE}`);
    return 2;
  }
  let parsed: Parsed;
  try {
    parsed = parseArgs({ args: rest, options: { ...COMMON, ...sub.options }, allowPositionals: true, strict: true }) as Parsed;
    const [min, max] = sub.positionals;
    if (!parsed.values.help && (parsed.positionals.length < min || parsed.positionals.length > max)) {
      throw new UsageError(`dataset ${name} takes ${min === max ? min : `${min} to ${max}`} argument(s), got ${parsed.positionals.length}`);
    }
  } catch (err) {
    io.stderr(`error: ${(err as Error).message.replace(/^TypeError \[[A-Z_]+\]: /, '')}\n\n${DATASET_USAGE}`);
    return 2;
  }
  if (parsed.values.help) {
    io.stdout(DATASET_USAGE);
    return 0;
  }

  const json = parsed.values.json === true;
  const out: Output = {
    json,
    result: (text, data) => io.stdout(json ? `${JSON.stringify(data, null, 2)}\n` : text.endsWith('\n') ? text : `${text}\n`),
    stderr: io.stderr,
  };
  let ws: Workspace | null = null;
  try {
    // A reader: dataset commands never train, so they leave the workspace's runs to its owner (the app).
    ws = openWorkspace(stringValue(parsed, 'workspace') ?? defaultWorkspaceDir(), { claimOwnership: false });
    return await sub.run(ws, parsed, out);
  } catch (err) {
    if (err instanceof DatasetImportError) {
      if (json) io.stdout(`${JSON.stringify({ ok: false, error: err.message, report: err.report }, null, 2)}\n`);
      io.stderr(`error: ${err.message}\n`);
      return 1;
    }
    if (err instanceof StoreError || err instanceof GeneratorError || err instanceof UsageError) {
      if (json) io.stdout(`${JSON.stringify({ ok: false, error: err.message }, null, 2)}\n`);
      io.stderr(`error: ${err.message}\n`);
      return 1;
    }
    throw err;
  } finally {
    ws?.close();
  }
}

// --- flag helpers -------------------------------------------------------------------------------------------

function stringValue(a: Parsed, name: string): string | undefined {
  const v = a.values[name];
  return typeof v === 'string' ? v : undefined;
}

function listValue(a: Parsed, name: string): string[] {
  const v = a.values[name];
  return Array.isArray(v) ? v : [];
}

function numberValue(a: Parsed, name: string, kind: 'int' | 'fraction' | 'number'): number | undefined {
  const raw = stringValue(a, name);
  if (raw === undefined) return undefined;
  const v = Number(raw);
  const ok = raw.trim() !== '' && Number.isFinite(v) && (kind !== 'int' || Number.isInteger(v)) && (kind !== 'fraction' || (v >= 0 && v <= 1));
  if (!ok) throw new UsageError(`--${name} must be ${kind === 'int' ? 'a whole number' : kind === 'fraction' ? 'a number from 0 to 1' : 'a number'}, got "${raw}"`);
  return v;
}

function choice<T extends string>(a: Parsed, name: string, allowed: readonly T[]): T | undefined {
  const raw = stringValue(a, name);
  if (raw === undefined) return undefined;
  if (!allowed.includes(raw as T)) throw new UsageError(`--${name} must be one of ${allowed.join(', ')}, got "${raw}"`);
  return raw as T;
}

function fieldMap(a: Parsed): FieldMap {
  const map: FieldMap = {};
  for (const entry of listValue(a, 'map')) {
    const eq = entry.indexOf('=');
    const field = entry.slice(0, eq).trim();
    if (eq < 1 || !(field in FIELD_ALIASES)) {
      throw new UsageError(`--map takes FIELD=KEY with FIELD one of ${Object.keys(FIELD_ALIASES).join(', ')}, got "${entry}"`);
    }
    map[field as keyof FieldMap] = entry.slice(eq + 1);
  }
  return map;
}

function multipleChoiceTemplate(a: Parsed): Partial<MultipleChoiceTemplate> | undefined {
  const file = stringValue(a, 'mc-template');
  if (file === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`--mc-template ${file}: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new UsageError(`--mc-template ${file}: expected a JSON object of template fields`);
  try {
    resolveTemplate(value as Partial<MultipleChoiceTemplate>);
  } catch (err) {
    if (err instanceof MultipleChoiceError) throw new UsageError(`--mc-template ${file}: ${err.message}`);
    throw err;
  }
  return value as Partial<MultipleChoiceTemplate>;
}

function reportText(report: ImportReport, limit = 20): string {
  const lines = report.issues.slice(0, limit).map((i) => `  ${formatIssue(i)}`);
  const more = report.issues.length + report.issuesOmitted - lines.length;
  if (more > 0) lines.push(`  ... and ${more} more`);
  return lines.join('\n');
}

// --- subcommands -------------------------------------------------------------------------------------------

async function runImport(ws: Workspace, a: Parsed, out: Output): Promise<number> {
  const file = a.positionals[0]!;
  const into = stringValue(a, 'into');
  if (into && stringValue(a, 'name')) throw new UsageError('use either --name (new dataset) or --into (existing dataset), not both');
  const result = await importDataset(ws, file, {
    name: stringValue(a, 'name'),
    into: into ? ws.datasets.find(into).id : undefined,
    format: choice(a, 'format', ['auto', 'json', 'jsonl', 'csv', 'tsv', 'parquet', 'scienceqa'] as const),
    shape: choice(a, 'shape', ['auto', 'alpaca', 'conversation', 'scienceqa'] as const),
    conversation: choice(a, 'conversation', ['last-turn', 'each-turn'] as const),
    fieldMap: fieldMap(a),
    delimiter: stringValue(a, 'delimiter')?.replace(/^\\t$/, '\t'),
    tags: listValue(a, 'tag'),
    split: choice(a, 'split', SPLITS),
    maxFieldChars: numberValue(a, 'max-field-chars', 'int'),
    imageRoot: stringValue(a, 'image-root'),
    maxImagePixels: numberValue(a, 'max-image-pixels', 'int'),
    multipleChoice: multipleChoiceTemplate(a),
    onInvalid: a.values['valid-only'] ? 'skip' : 'reject',
  });
  const skipped = result.report.invalidRecords;
  const text = [
    `imported ${result.imported} example(s)${result.report.images ? ` (${result.report.images} with an image)` : ''} into ${result.dataset.name} (${result.dataset.id}), version ${result.version.version}`,
    ...(skipped ? [`skipped ${skipped} invalid record(s):`, reportText(result.report)] : []),
  ].join('\n');
  out.result(text, { ok: true, dataset: result.dataset, version: result.version.version, imported: result.imported, report: result.report });
  return 0;
}

function runList(ws: Workspace, a: Parsed, out: Output): number {
  const name = a.positionals[0];
  if (name) {
    const dataset = ws.datasets.find(name);
    const versions = ws.datasets.versions(dataset.id);
    const text = versions
      .map((v) => `v${v.version}  ${new Date(v.createdAt).toISOString().slice(0, 19).replace('T', ' ')}  ${v.kind.padEnd(8)} ${v.summary}${v.revertedBy ? `  (undone by v${v.revertedBy})` : ''}`)
      .join('\n');
    out.result(`${dataset.name} (${dataset.id}), ${ws.datasets.count(dataset.id)} examples\n${text}`, { dataset, versions });
    return 0;
  }
  const datasets = ws.datasets.list();
  const text = datasets.length
    ? datasets
        .map((d) => `${d.name}  (${d.id})  ${d.examples} examples${d.images ? ` (${d.images} with an image)` : ''}  v${d.version}  train ${d.splits.train} / val ${d.splits.val} / test ${d.splits.test} / unassigned ${d.splits.unassigned}`)
        .join('\n')
    : 'no datasets yet (import one with: adapter-studio dataset import FILE)';
  out.result(text, { datasets });
  return 0;
}

function runExport(ws: Workspace, a: Parsed, out: Output): number {
  const dataset = ws.datasets.find(a.positionals[0]!);
  const result = exportDataset(ws, dataset.id, a.positionals[1]!, {
    format: choice(a, 'format', ['json', 'jsonl'] as const),
    split: choice(a, 'split', SPLITS as readonly Split[]),
    version: numberValue(a, 'version', 'int'),
    includeMeta: a.values.meta === true,
  });
  const images = result.images ? ` and ${result.images} image(s) to ${join(dirname(result.file), EXPORT_IMAGES_DIR)}` : '';
  out.result(`wrote ${result.count} example(s) of ${dataset.name} v${result.version} to ${result.file} (${result.format})${images}`, { ok: true, ...result });
  return 0;
}

function runDedupe(ws: Workspace, a: Parsed, out: Output): number {
  const dataset = ws.datasets.find(a.positionals[0]!);
  const near = a.values.near === true;
  const threshold = numberValue(a, 'threshold', 'fraction');
  if (threshold !== undefined && !near) throw new UsageError('--threshold applies to --near');
  const groups: DuplicateGroup[] = near ? findNearDuplicates(ws, dataset.id, { threshold }) : findExactDuplicates(ws, dataset.id);
  const skipped = new Set(
    String(a.values.skip ?? '')
      .split(',')
      .filter((s) => s.trim() !== '')
      .map((s) => {
        const id = Number(s);
        if (!Number.isInteger(id) || !groups.some((g) => g.keep === id)) throw new UsageError(`--skip: ${JSON.stringify(s)} is not the kept example of a group (the "keep" numbers listed without --apply)`);
        return id;
      }),
  );
  const chosen = groups.filter((g) => !skipped.has(g.keep));
  const version = a.values.apply ? removeDuplicates(ws, dataset.id, chosen) : null;
  const duplicates = chosen.reduce((n, g) => n + g.ids.length - 1, 0);
  const lines = [
    `${groups.length} group(s) of ${near ? 'near' : 'exact'} duplicates in ${dataset.name}` +
      (skipped.size ? `, ${skipped.size} skipped` : '') +
      `: ${duplicates} example(s) beyond the kept one of each${near ? ' (similarity to the kept one in parentheses, the lowest over instruction, input and output)' : ''}`,
  ];
  for (const g of groups.slice(0, 20)) {
    const first = ws.datasets.example(g.keep);
    lines.push(`  ${skipped.has(g.keep) ? 'skip' : 'keep'} ${g.keep}, duplicates ${g.ids.slice(1).map((id, k) => `${id}${near ? ` (${g.similarity[k + 1]!.toFixed(2)})` : ''}`).join(', ')}: ${JSON.stringify(first.instruction.slice(0, 70))}`);
  }
  if (groups.length > 20) lines.push(`  ... and ${groups.length - 20} more group(s)`);
  if (a.values.apply) lines.push(version ? `removed ${version.changes} example(s) as version ${version.version} (undo with: adapter-studio dataset undo ${dataset.name})` : 'nothing to remove');
  else if (groups.length) lines.push(`run again with --apply to delete these ${duplicates} example(s), keeping the first of each group (--skip KEEP,... leaves groups alone)`);
  out.result(lines.join('\n'), { dataset: dataset.id, kind: near ? 'near' : 'exact', groups, removed: version?.changes ?? 0, version: version?.version ?? null });
  return 0;
}

function runSplit(ws: Workspace, a: Parsed, out: Output): number {
  const dataset = ws.datasets.find(a.positionals[0]!);
  const seedRaw = stringValue(a, 'seed');
  const seed = seedRaw === undefined ? 0 : /^-?\d+$/.test(seedRaw) ? Number(seedRaw) : seedRaw;
  const result = assignSplits(ws, dataset.id, {
    train: numberValue(a, 'train', 'fraction'),
    val: numberValue(a, 'val', 'fraction'),
    test: numberValue(a, 'test', 'fraction'),
    seed,
  });
  const { train, val, test } = result.counts;
  const what = result.version ? `version ${result.version.version}` : 'unchanged (every example already had its split)';
  out.result(`${dataset.name}: ${train} train, ${val} val, ${test} test; ${what}`, { dataset: dataset.id, counts: result.counts, version: result.version?.version ?? null });
  return 0;
}

function runUndo(ws: Workspace, a: Parsed, out: Output): number {
  const dataset = ws.datasets.find(a.positionals[0]!);
  const version = ws.datasets.undo(dataset.id);
  out.result(`${dataset.name}: ${version.summary} (now version ${version.version})`, { dataset: dataset.id, version });
  return 0;
}
