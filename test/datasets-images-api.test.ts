// The typed API for image datasets, through the service's validating entry point and over real HTTP: imports
// of a ScienceQA folder and parquet shards, image counts per dataset, examples with image and metadata, an
// example's image bytes, and clean-up of images when a dataset goes.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { strFromU8, unzipSync } from 'fflate';
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
    expect((err as ApiError).message).toBe('train.parquet is a binary parquet file: upload it or import it by its path, not as text');
  });

  it('imports parquet uploaded as bytes, and removes the upload once imported', async () => {
    const bytes = readFileSync(join(FIXTURES, 'parquet', 'alpaca-bad.parquet'));
    const answer = await app.service.upload('bad.parquet', Readable.from([bytes]));
    if (!answer.ok) throw new Error(answer.error.message);
    expect(answer.value).toMatchObject({ fileName: 'bad.parquet', bytes: bytes.length });
    const source = { kind: 'upload' as const, uploadId: answer.value.uploadId };
    const report = await app.call('datasets.validate', { source, options: {} });
    expect(report.issues).toEqual([expect.objectContaining({ index: 4, rowGroup: 1, row: 1, field: 'output' })]);
    // Refused (an invalid record), the upload stays for the second try that skips it.
    await expect(app.call('datasets.import', { source, options: {}, name: 'uploaded parquet', onInvalid: 'reject' })).rejects.toThrow(/nothing imported/);
    const imported = await app.call('datasets.import', { source, options: {}, name: 'uploaded parquet', onInvalid: 'skip' });
    expect(imported.imported).toBe(report.examples);
    await expect(app.call('datasets.validate', { source, options: {} })).rejects.toThrow(`upload ${answer.value.uploadId} is gone`);
  });

  it("adds, replaces and removes an example's picture as versions that undo, and refuses one not uploaded", async () => {
    const [six] = (await app.call('datasets.query', { datasetId, split: 'test', hasImage: false, limit: 1 })).items;
    const png = readFileSync(join(FIXTURES, 'clip', 'images', 'rgb-32.png'));
    const uploaded = await app.call('images.upload', { fileName: 'rgb-32.png', base64: png.toString('base64') });
    const get = async () => (await app.call('datasets.query', { datasetId, search: six!.instruction.split(' ')[0], limit: 100 })).items.find((e) => e.id === six!.id)!;

    await app.call('datasets.editExample', { datasetId, exampleId: six!.id, patch: { image: uploaded.sha256 } });
    expect((await get()).image).toBe(uploaded.sha256);
    expect((await app.call('datasets.get', { datasetId })).images).toBe(7);
    // A new picture makes a different example: duplicate detection compares the picture too.
    expect((await get()).instruction).toBe(six!.instruction);

    await app.call('datasets.editExample', { datasetId, exampleId: six!.id, patch: { image: null } });
    expect((await get()).image).toBeNull();
    await app.call('datasets.undo', { datasetId });
    expect((await get()).image).toBe(uploaded.sha256);
    await app.call('datasets.undo', { datasetId });
    expect((await get()).image).toBeNull();
    expect((await app.call('datasets.get', { datasetId })).images).toBe(6);

    const unknown = await app.call('datasets.editExample', { datasetId, exampleId: six!.id, patch: { image: 'a'.repeat(64) } }).catch((e: unknown) => e);
    expect((unknown as ApiError).message).toMatch(/image a{64} is not in the workspace's image store/);
    const malformed = await app.call('datasets.editExample', { datasetId, exampleId: six!.id, patch: { image: 'xyz' } }).catch((e: unknown) => e);
    expect((malformed as ApiError).message).toMatch(/patch\.image.*sha256/);
    expect((await get()).image).toBeNull();
  });

  it('exports a zip holding the data file and the pictures it names', async () => {
    const exported = await app.call('datasets.export', { datasetId, format: 'json', split: 'test', withImages: true });
    expect(exported).toMatchObject({ fileName: 'sqa-test.zip', mimeType: 'application/zip', encoding: 'base64', examples: 8, images: 4 });
    const files = unzipSync(new Uint8Array(Buffer.from(exported.content, 'base64')));
    const records = JSON.parse(strFromU8(files['sqa-test.json']!)) as { image?: string }[];
    const named = records.flatMap((r) => (r.image ? [r.image] : []));
    expect(named).toHaveLength(4);
    expect(Object.keys(files).sort()).toEqual(['sqa-test.json', ...new Set(named)].sort());
    // The bytes are the stored ones, unchanged.
    const [first] = (await app.call('datasets.query', { datasetId, split: 'test', hasImage: true, limit: 1 })).items;
    const stored = await app.call('datasets.image', { datasetId, exampleId: first!.id });
    expect(Buffer.from(files[`images/${stored.sha256}.png`]!)).toEqual(Buffer.from(stored.base64, 'base64'));
  });

  it('exports records that name their images, and removes images with the last dataset using them', async () => {
    const exported = await app.call('datasets.export', { datasetId, format: 'jsonl', split: 'test' });
    expect(exported).toMatchObject({ examples: 8, images: 4 });
    expect(JSON.parse(exported.content.split('\n')[0]!).image).toMatch(/^images\/[0-9a-f]{64}\.png$/);

    const ws = join((await app.call('system.info', {})).workspace, 'images');
    const { readdirSync } = await import('node:fs');
    const files = () => readdirSync(ws, { recursive: true }).filter((f) => String(f).endsWith('.png'));
    // Five from the import, one uploaded above (its example gave it back, an undoable version still names it).
    expect(files()).toHaveLength(6);
    await app.call('datasets.remove', { datasetId });
    expect(files()).toHaveLength(0);
  });
});
