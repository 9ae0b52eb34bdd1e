// Sweeps in the store (real SQLite files): a sweep and its runs are written together, a point's evaluation is
// recorded once, and everything survives closing and reopening the workspace. Also the nested data subsets a
// data-amount sweep trains on.

import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openWorkspace, type RunId } from '../src-main/store/index.js';
import { selectExamples } from '../src-main/service/run-data.js';
import { tempWorkspace } from './helpers/store-fixtures.js';

function setup() {
  const { ws, dir } = tempWorkspace('sweeps');
  const ds = ws.datasets.create('d');
  const model = ws.models.register({ name: 'tiny', path: join(dir, 'models', 'tiny'), fingerprint: 'abc', config: { layers: 2 } });
  const newRun = (layers: number) => () =>
    ws.runs.create({ method: 'adapter', recipe: { adapterLayers: layers }, datasetId: ds.id, datasetVersion: 1, modelId: model.id, backend: 'cpu' }).id;
  return { ws, dir, ds, model, newRun };
}

describe('sweep store', () => {
  it('stores a sweep with one run per point, records each suite once, and survives a reopen', () => {
    const { ws, dir, ds, model, newRun } = setup();
    const sweep = ws.sweeps.create({
      name: 'layers',
      modelId: model.id,
      datasetId: ds.id,
      datasetVersion: 1,
      spec: { vary: [{ field: 'adapterLayers', values: [1, 2] }] },
      points: [
        { settings: { adapterLayers: 1 }, createRun: newRun(1) },
        { settings: { adapterLayers: 2 }, createRun: newRun(2) },
      ],
    });
    expect(sweep.status).toBe('running');
    expect(sweep.points.map((p) => p.settings)).toEqual([{ adapterLayers: 1 }, { adapterLayers: 2 }]);
    const runIds = sweep.points.map((p) => p.runId!);
    expect(runIds.map((id) => ws.runs.get(id).recipe)).toEqual([{ adapterLayers: 1 }, { adapterLayers: 2 }]);
    expect(ws.sweeps.sweepOf(runIds[1]!)).toBe(sweep.id);

    let created = 0;
    expect(ws.sweeps.attachSuite(sweep.id, 0, () => `suite_${++created}`)).toBe(true);
    expect(ws.sweeps.attachSuite(sweep.id, 0, () => `suite_${++created}`)).toBe(false);
    expect(created).toBe(1);
    ws.close();

    const again = openWorkspace(dir);
    const back = again.sweeps.get(sweep.id);
    expect(back.points.map((p) => [p.runId, p.evalSuite])).toEqual([
      [runIds[0], 'suite_1'],
      [runIds[1], null],
    ]);
    expect(again.sweeps.list('running').map((s) => s.id)).toEqual([sweep.id]);
    expect(again.sweeps.finish(sweep.id, 'completed').status).toBe('completed');
    // Finishing is once: a late cancel does not rewrite a completed sweep.
    expect(again.sweeps.finish(sweep.id, 'cancelled').status).toBe('completed');
    again.close();
  });

  it('writes nothing when a point cannot be created: no sweep, no stray runs', () => {
    const { ws, ds, model, newRun } = setup();
    const before = ws.runs.list().length;
    expect(() =>
      ws.sweeps.create({
        name: 'broken',
        modelId: model.id,
        datasetId: ds.id,
        datasetVersion: 1,
        spec: {},
        points: [
          { settings: { adapterLayers: 1 }, createRun: newRun(1) },
          {
            settings: { adapterLayers: 2 },
            createRun: () => {
              throw new Error('disk full');
            },
          },
        ],
      }),
    ).toThrow(/disk full/);
    expect(ws.sweeps.list()).toEqual([]);
    expect(ws.runs.list().length).toBe(before);
    ws.close();
  });

  it('keeps the sweep when one of its runs is deleted, and deleting the sweep keeps its runs', () => {
    const { ws, ds, model, newRun } = setup();
    const sweep = ws.sweeps.create({
      name: 's',
      modelId: model.id,
      datasetId: ds.id,
      datasetVersion: 1,
      spec: {},
      points: [{ settings: { adapterLayers: 1 }, createRun: newRun(1) }, { settings: { adapterLayers: 2 }, createRun: newRun(2) }],
    });
    const [first, second] = sweep.points.map((p) => p.runId as RunId);
    ws.runs.delete(first!);
    expect(ws.sweeps.get(sweep.id).points.map((p) => p.runId)).toEqual([null, second]);
    ws.sweeps.delete(sweep.id);
    expect(() => ws.sweeps.get(sweep.id)).toThrow(/sweep/);
    expect(ws.runs.get(second!).id).toBe(second);
    ws.close();
  });
});

describe('data selection for sweeps', () => {
  const examples = Array.from({ length: 50 }, (_, i) => ({
    id: 100 - i, // ids not in dataset order: the subset must not depend on it
    split: (i % 5 === 0 ? 'test' : 'train') as 'train' | 'test',
    tags: i % 2 === 0 ? ['human'] : [],
    source: i % 3 === 0 ? 'self-instruct' : 'import',
  }));

  it('nests smaller subsets inside larger ones and keeps the dataset order', () => {
    const small = selectExamples(examples, 'train', { count: 4, seed: 3 });
    const large = selectExamples(examples, 'train', { count: 20, seed: 3 });
    expect(small).toHaveLength(4);
    expect(large).toHaveLength(20);
    expect(small.every((e) => large.includes(e))).toBe(true);
    expect(large.map((e) => examples.indexOf(e))).toEqual([...large.map((e) => examples.indexOf(e))].sort((a, b) => a - b));
    expect(selectExamples(examples, 'train', { count: 4, seed: 4 })).not.toEqual(small);
    expect(selectExamples(examples, 'train', { count: 1000 })).toEqual(selectExamples(examples, 'train'));
  });

  it('filters by tag and source, "!" negating', () => {
    const train = selectExamples(examples, 'train');
    expect(selectExamples(examples, 'train', { tag: 'human' })).toEqual(train.filter((e) => e.tags.includes('human')));
    expect(selectExamples(examples, 'train', { source: '!self-instruct' })).toEqual(train.filter((e) => e.source !== 'self-instruct'));
    expect(selectExamples(examples, 'test', { tag: '!human', source: 'self-instruct' }).every((e) => e.split === 'test' && !e.tags.includes('human') && e.source === 'self-instruct')).toBe(true);
  });
});
