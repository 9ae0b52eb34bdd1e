// The typed API for image datasets, through the service's validating entry point and over real HTTP: imports
// of a ScienceQA folder and parquet shards, image counts per dataset, examples with image and metadata, an
// example's image bytes, and clean-up of images when a dataset goes.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError, type ApiResponse, type ExampleImage } from '../src-shared/api.js';
import { newToken } from '../src-main/server/auth.js';
import { type RunningServer, startHttpServer } from '../src-main/server/http-server.js';
import { type AppFixture, startApp } from './helpers/app-fixture.js';
import { makeTempDir } from './helpers/tmp.js';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const SQA = join(FIXTURES, 'scienceqa');

let app: AppFixture;
let server: RunningServer;
let token: string;

beforeAll(async () => {
  app = startApp(join(makeTempDir('images-api'), 'workspace'));
  token = newToken();
  server = await startHttpServer({ service: app.service, token, host: '127.0.0.1', port: 0, staticDir: null });
});

afterAll(async () => {
  await server?.close();
  await app?.close();
});

describe('datasets with images through the API', () => {
  let datasetId: string;

  it('validates and imports a ScienceQA folder, and lists its image count', async () => {
    const report = await app.call('datasets.validate', { source: { kind: 'path', path: SQA }, options: {} });
    expect(report).toMatchObject({ format: 'scienceqa', records: 12, examples: 12, images: 6, fatal: null });
    const imported = await app.call('datasets.import', { source: { kind: 'path', path: SQA }, options: { format: 'scienceqa' }, name: 'sqa', onInvalid: 'reject' });
    datasetId = imported.dataset.id;
    expect(imported.dataset).toMatchObject({ examples: 12, images: 6, splits: { train: 3, val: 1, test: 8, unassigned: 0 } });
    expect((await app.call('datasets.list', {})).map((d) => [d.name, d.examples, d.images])).toEqual([['sqa', 12, 6]]);
  });

  it('returns examples with their image hash and metadata, and an image as base64 over HTTP', async () => {
    const page = await app.call('datasets.query', { datasetId, split: 'test', limit: 2 });
    const [five, six] = page.items;
    expect(five!.meta).toMatchObject({ pid: '5', subject: 'natural science', grade: 'grade1', choices: ['cat', 'sparrow', 'frog'], answer: 1 });
    expect(five!.image).toMatch(/^[0-9a-f]{64}$/);
    expect(six!.image).toBeNull();

    const res = await fetch(`http://127.0.0.1:${server.port}/api/call/datasets.image`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}` },
      body: JSON.stringify({ datasetId, exampleId: five!.id }),
    });
    const answer = (await res.json()) as ApiResponse<ExampleImage>;
    expect(answer.ok).toBe(true);
    const image = (answer as { value: ExampleImage }).value;
    expect(image).toMatchObject({ sha256: five!.image, format: 'png', mimeType: 'image/png', width: 6, height: 4 });
    expect(Buffer.from(image.base64, 'base64')).toEqual(readFileSync(join(SQA, 'images/test/5/image.png')));

    expect((await app.call('datasets.query', { datasetId, hasImage: true })).total).toBe(6);
    expect((await app.call('datasets.query', { datasetId, hasImage: false, split: 'test' })).total).toBe(4);

    const none = await app.call('datasets.image', { datasetId, exampleId: six!.id }).catch((e: unknown) => e);
    expect(none).toBeInstanceOf(ApiError);
    expect((none as ApiError).message).toMatch(/has no image/);
  });

  it('reports row group and row of a bad parquet row, and imports shards as one dataset', async () => {
    const bad = await app.call('datasets.validate', { source: { kind: 'path', path: join(FIXTURES, 'parquet', 'alpaca-bad.parquet') }, options: {} });
    expect(bad.issues).toEqual([expect.objectContaining({ index: 4, rowGroup: 1, row: 1, field: 'output' })]);
    const shards = await app.call('datasets.import', { source: { kind: 'path', path: join(FIXTURES, 'parquet', 'shards') }, options: {}, onInvalid: 'reject' });
    expect(shards.dataset).toMatchObject({ name: 'shards', examples: 7, images: 0, splits: { train: 5, test: 2 } });
  });

  it('refuses parquet sent as text', async () => {
    const err = await app.call('datasets.validate', { source: { kind: 'text', fileName: 'train.parquet', text: 'PAR1...' }, options: {} }).catch((e: unknown) => e);
    expect((err as ApiError).message).toBe('train.parquet is a binary parquet file: import it by its path, not as text');
  });

  it('exports records that name their images, and removes images with the last dataset using them', async () => {
    const exported = await app.call('datasets.export', { datasetId, format: 'jsonl', split: 'test' });
    expect(exported).toMatchObject({ examples: 8, images: 4 });
    expect(JSON.parse(exported.content.split('\n')[0]!).image).toMatch(/^images\/[0-9a-f]{64}\.png$/);

    const ws = join((await app.call('system.info', {})).workspace, 'images');
    const { readdirSync } = await import('node:fs');
    const files = () => readdirSync(ws, { recursive: true }).filter((f) => String(f).endsWith('.png'));
    expect(files()).toHaveLength(5);
    await app.call('datasets.remove', { datasetId });
    expect(files()).toHaveLength(0);
  });
});
