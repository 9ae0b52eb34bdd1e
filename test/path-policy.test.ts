// Which paths a client may name: any locally; under `serve --allow-remote` (and in the desktop app) only those
// inside the allowed roots, links resolved, checked for every request that names a path. Real files, a real
// service (and its engine host) on a temporary workspace.

import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiResponse } from '../src-shared/api.js';
import { forkSpawner } from '../src-main/host/engine-process.js';
import { anyPath, pathsUnder } from '../src-main/service/path-policy.js';
import { type AppService, createAppService } from '../src-main/service/index.js';
import { buildAppParts, HOST_ENTRY, writeTinyModel } from './helpers/app-fixture.js';
import { makeTempDir } from './helpers/tmp.js';

let dir: string;
let root: string;
let outside: string;

beforeAll(() => {
  dir = makeTempDir('path-policy');
  root = join(dir, 'allowed');
  outside = join(dir, 'elsewhere');
  mkdirSync(root, { recursive: true });
  mkdirSync(outside, { recursive: true });
  writeFileSync(join(outside, 'secret.csv'), 'root:x:0:0:root:/root:/bin/bash\n');
  writeFileSync(join(root, 'data.json'), JSON.stringify([{ instruction: 'Say hi', input: '', output: 'hi' }]));
  symlinkSync(outside, join(root, 'link-out'));
});

describe('pathsUnder', () => {
  it('allows what is inside a root, also paths that do not exist yet', () => {
    const policy = pathsUnder([root]);
    expect(() => policy.check(join(root, 'data.json'), 'the dataset file')).not.toThrow();
    expect(() => policy.check(root, 'the workspace folder')).not.toThrow();
    expect(() => policy.check(join(root, 'new', 'workspace'), 'the workspace folder')).not.toThrow();
  });

  it('refuses what is outside, through `..` or a link, naming the input and the roots', () => {
    const policy = pathsUnder([root]);
    expect(() => policy.check(join(outside, 'secret.csv'), 'the dataset file')).toThrow(/the dataset file "secret\.csv" is outside the folders this server may read; allowed: ".*allowed"/);
    expect(() => policy.check(join(root, '..', 'elsewhere', 'secret.csv'), 'the dataset file')).toThrow(/outside/);
    expect(() => policy.check(join(root, 'link-out', 'secret.csv'), 'the dataset file')).toThrow(/outside/);
    expect(() => policy.check(`${root}-sibling`, 'the model folder')).toThrow(/outside/);
  });

  it('allows a chosen path from then on', () => {
    const policy = pathsUnder([]);
    expect(() => policy.check(join(outside, 'secret.csv'), 'the dataset file')).toThrow(/choose it with the file dialog/);
    policy.allow(outside);
    expect(() => policy.check(join(outside, 'secret.csv'), 'the dataset file')).not.toThrow();
  });

  it('anyPath allows everything', () => {
    expect(() => anyPath().check('/etc/passwd', 'the dataset file')).not.toThrow();
  });
});

describe('a service that may read only its roots', () => {
  let service: AppService;
  beforeAll(() => {
    buildAppParts();
    writeTinyModel(root);
    service = createAppService({ workspaceDir: join(root, 'ws'), spawnHost: forkSpawner(HOST_ENTRY), transport: 'http', version: 'test', log: () => undefined, pathPolicy: pathsUnder([root]) });
  });
  afterAll(async () => {
    await service?.close();
  });

  const refusedOutside = (answer: ApiResponse<unknown>) => expect(answer).toMatchObject({ ok: false, error: { code: 'user', message: expect.stringMatching(/is outside the folders this server may read/) } });

  it('refuses every path-naming request outside them, before reading anything', async () => {
    const secret = join(outside, 'secret.csv');
    refusedOutside(await service.call('datasets.validate', { source: { kind: 'path', path: secret }, options: { format: 'csv' } }));
    refusedOutside(await service.call('datasets.import', { source: { kind: 'path', path: secret }, options: {}, onInvalid: 'reject' }));
    refusedOutside(await service.call('datasets.validate', { source: { kind: 'path', path: join(root, 'data.json') }, options: { imageRoot: outside } }));
    refusedOutside(await service.call('models.add', { path: outside }));
    refusedOutside(await service.call('settings.switchWorkspace', { path: join(outside, 'ws') }));
    refusedOutside(await service.call('runs.importJob', { jobDir: outside }));
    // Nothing of the file's content reached the answer.
    const answer = await service.call('datasets.validate', { source: { kind: 'path', path: secret }, options: { format: 'csv' } });
    expect(JSON.stringify(answer)).not.toContain('root:x');
  });

  it('does not read a file that is not named as a dataset, so no message can quote it', async () => {
    writeFileSync(join(root, 'passwd'), 'root:x:0:0:root:/root:/bin/bash\n');
    const answer = await service.call('datasets.validate', { source: { kind: 'path', path: join(root, 'passwd') }, options: { format: 'csv' } });
    expect(answer).toMatchObject({ ok: false, error: { code: 'user', message: 'passwd is not named as a dataset file: rename it to .json, .jsonl, .csv, .tsv or .parquet, or upload it' } });
  });

  it('serves what is inside them', async () => {
    expect(await service.call('datasets.validate', { source: { kind: 'path', path: join(root, 'data.json') }, options: {} })).toMatchObject({ ok: true, value: { examples: 1 } });
    expect(await service.call('models.add', { path: join(root, 'tiny-model') })).toMatchObject({ ok: true });
  });
});
