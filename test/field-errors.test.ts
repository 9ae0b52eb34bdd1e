// The contract's complaints as a form shows them: beside their field, or in words (never "field \"a.b\": ...").

import { describe, expect, it } from 'vitest';
import { ApiError, parseRequest } from '../src-shared/api.js';
import { issuesInWords, placeIssues, readablePath } from '../src-shared/field-errors.js';

describe('field errors', () => {
  it('says a request path in words', () => {
    expect(readablePath('sampling.maxNewTokens')).toBe('max new tokens');
    expect(readablePath('systems.2.label')).toBe('label (item 3)');
    expect(readablePath('recipe.lora_alpha')).toBe('lora alpha');
    expect(readablePath('(request)')).toBe('');
  });

  it('places a refused request beside its fields and says the rest in words', () => {
    let error: unknown;
    try {
      parseRequest('compare.start', { prompts: ['hi'], sides: [{ modelId: 'm', adapterRunId: null }], sampling: { maxNewTokens: -5, temperature: 9 } });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ApiError);
    const issues = (error as ApiError).issues;
    const paths = issues.map((i) => i.path);
    expect(paths).toContain('sampling.maxNewTokens');
    const placed = placeIssues(issues, (path) => (path.startsWith('sampling.') ? path.slice('sampling.'.length) : null));
    expect(Object.keys(placed.fields)).toEqual(expect.arrayContaining(['maxNewTokens']));
    // Whatever has no field is said in words, without the contract's path syntax.
    const words = issuesInWords(issues);
    expect(words).toMatch(/max new tokens: /);
    expect(words).not.toMatch(/field "/);
    expect(placed.rest === null || !placed.rest.includes('field "')).toBe(true);
  });

  it('keeps one message per field: the first', () => {
    const placed = placeIssues(
      [
        { path: 'recipe.lr', message: 'first' },
        { path: 'recipe.lr', message: 'second' },
        { path: 'other', message: 'not a field' },
      ],
      (p) => (p.startsWith('recipe.') ? p.slice(7) : null),
    );
    expect(placed.fields).toEqual({ lr: 'first' });
    expect(placed.rest).toBe('other: not a field');
  });
});
