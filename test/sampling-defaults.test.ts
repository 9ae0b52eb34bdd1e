// One set of sampling defaults (issue: the same greedy model answered differently by page): the API's schema,
// which Chat, Compare and generate start from, and the CLI's `generate` agree, and none hides a repetition
// penalty, so temperature 0 gives Evaluate's greedy answer everywhere.

import { describe, expect, it } from 'vitest';
import { Sampling, SAMPLING_DEFAULTS } from '../src-shared/api.js';
import { samplingFromFlags } from '../src-main/cli/engine-commands.js';
import { DEFAULT_SAMPLING } from '../src-main/engine/sample.js';

describe('sampling defaults', () => {
  it('the API, the app and the CLI start from the same values', () => {
    const { seed: _seed, ...api } = Sampling.parse({});
    const { stop, ...cli } = samplingFromFlags({});
    expect(cli).toEqual(api);
    expect(api).toEqual(SAMPLING_DEFAULTS);
    expect(stop).toEqual([]);
  });

  it('no hidden repetition penalty: greedy chat is greedy evaluation', () => {
    expect(Sampling.parse({}).repetitionPenalty).toBe(1);
    expect(DEFAULT_SAMPLING.repetitionPenalty).toBe(1);
    expect(samplingFromFlags({ temperature: '0' }).temperature).toBe(0);
  });
});
