// ScienceQA's prompt format and its numbers: the multiple-choice template, answer extraction, and the accuracy
// table against reference values that tools/make_scienceqa_fixture.py computed in Python with the logic of
// ScienceQA's tools/evaluate_acc.py (test/fixtures/scienceqa/expected.json).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../src-main/cli/main.js';
import { importDataset } from '../src-main/datasets/index.js';
import {
  DEFAULT_MULTIPLE_CHOICE_TEMPLATE,
  MultipleChoiceError,
  multipleChoiceExample,
  multipleChoicePrompt,
  resolveTemplate,
} from '../src-main/datasets/multiple-choice.js';
import { formatAlpacaPrompt } from '../src-main/engine/data.js';
import {
  formatPercent,
  parseScienceQaAnswer,
  predictByLikelihood,
  problemsFromExamples,
  readProblemsFile,
  readResultsFile,
  ScienceQaError,
  scienceQaPredictions,
  scoreScienceQa,
} from '../src-main/evaluation/scienceqa.js';
import { tempWorkspace, writeJsonFile } from './helpers/store-fixtures.js';
import { makeTempDir } from './helpers/tmp.js';

const SQA = join(import.meta.dirname, 'fixtures', 'scienceqa');
const expected = JSON.parse(readFileSync(join(SQA, 'expected.json'), 'utf8')) as {
  parsed: Record<string, number>;
  scores: Record<string, string>;
  topics: Record<string, string>;
  correct: number;
  total: number;
  format2: [number, string][];
  alt: { scores: Record<string, string>; topics: Record<string, string>; correct: number };
};
const problems = readProblemsFile(join(SQA, 'problems.json'));
const outputs = JSON.parse(readFileSync(join(SQA, 'outputs.json'), 'utf8')) as Record<string, string>;

describe('the multiple-choice template', () => {
  const q = { question: 'Which animal has feathers?', context: '', choices: ['cat', 'sparrow', 'frog'], answer: 1 };

  it("writes LLaMA-Adapter's ScienceQA figure", () => {
    expect(multipleChoicePrompt(q) + ' ' + multipleChoiceExample(q).output).toBe(
      'Question: Which animal has feathers?\nContext: N/A\nOptions: (A) cat (B) sparrow (C) frog\nAnswer: The answer is (B).',
    );
    const ex = multipleChoiceExample({ ...q, context: 'Birds fly.' });
    expect(ex).toEqual({ instruction: 'Question: Which animal has feathers?\nContext: Birds fly.\nOptions: (A) cat (B) sparrow (C) frog', input: '', output: 'The answer is (B).' });
    // The Alpaca template around it, as training tokenises it.
    expect(formatAlpacaPrompt(ex.instruction, ex.input) + ex.output).toMatch(/### Instruction:\nQuestion: Which animal has feathers\?\nContext: Birds fly\.\nOptions: \(A\) cat \(B\) sparrow \(C\) frog\n\n### Response:The answer is \(B\)\.$/);
  });

  it('keeps placeholders and replacement patterns inside the text as written', () => {
    const ex = multipleChoiceExample({ question: 'What does {context} mean? $& $1', context: '{question}', choices: ['{letter}', '$$'], answer: 0 });
    expect(ex.instruction).toBe('Question: What does {context} mean? $& $1\nContext: {question}\nOptions: (A) {letter} (B) $$');
  });

  it('is configurable, and refuses a template that cannot work', () => {
    const t = resolveTemplate({ prompt: 'Context: {context}\nQuestion: {question}\nOptions: {options}', option: '{letter}. {choice}', answer: 'The answer is {letter}.' });
    expect(multipleChoiceExample(q, t)).toMatchObject({ instruction: 'Context: N/A\nQuestion: Which animal has feathers?\nOptions: A. cat B. sparrow C. frog', output: 'The answer is B.' });
    expect(() => resolveTemplate({ prompt: 'no slots' })).toThrow(MultipleChoiceError);
    expect(() => resolveTemplate({ answer: 'always A' })).toThrow(/must contain \{letter\}/);
    expect(() => resolveTemplate({ colour: 'x' } as never)).toThrow(/unknown field "colour"/);
    expect(DEFAULT_MULTIPLE_CHOICE_TEMPLATE.emptyContext).toBe('N/A');
  });
});

describe('answer extraction', () => {
  it('parses the outputs as the Python reference does', () => {
    const items = Object.entries(outputs).map(([pid, output]) => ({ pid, output, choices: problems[pid]!.choices.length }));
    const { results, unparseable } = scienceQaPredictions(items);
    expect(results).toEqual(expected.parsed);
    expect(unparseable.map((u) => [u.pid, u.reason])).toEqual([
      ['8', 'no answer'],
      ['9', 'several answers'],
      ['10', 'not a choice (E)'],
      ['12', 'no answer'],
    ]);
  });

  it('takes the letter with or without parentheses, and nothing looser', () => {
    expect(parseScienceQaAnswer('The answer is A.', 2)).toEqual({ index: 0, letter: 'A' });
    expect(parseScienceQaAnswer('Answer: The answer is (B) because...', 2)).toEqual({ index: 1, letter: 'B' });
    expect(parseScienceQaAnswer('The answer is B', 2)).toMatchObject({ index: null, reason: 'no answer' }); // the official "." needs a character
    expect(parseScienceQaAnswer('answer: B', 2)).toMatchObject({ index: null });
  });

  it('ranks choices by a likelihood scorer where one is plugged in', async () => {
    const seen: string[][] = [];
    const index = await predictByLikelihood({ question: 'Q?', context: '', choices: ['x', 'y', 'z'] }, async (instruction, answers) => {
      seen.push([instruction, ...answers]);
      return [-3, -1, -2];
    });
    expect(index).toBe(1);
    expect(seen).toEqual([['Question: Q?\nContext: N/A\nOptions: (A) x (B) y (C) z', 'The answer is (A).', 'The answer is (B).', 'The answer is (C).']]);
  });
});

describe('the accuracy table', () => {
  it('matches the Python reference of tools/evaluate_acc.py', () => {
    const scores = scoreScienceQa(problems, readResultsFile(join(SQA, 'results.json')));
    expect(scores.printed).toEqual(expected.scores);
    expect(scores.scores).toEqual(Object.fromEntries(Object.entries(expected.scores).map(([k, v]) => [k, Number(v)])));
    expect(scores.topics).toEqual(Object.fromEntries(Object.entries(expected.topics).map(([k, v]) => [k, Number(v)])));
    expect([scores.correct, scores.questions]).toEqual([expected.correct, expected.total]);
    expect(scores.notAChoice).toEqual(['8', '9', '10', '12']);
    expect(scores.counts).toMatchObject({ acc_average: 8, acc_has_image: 4, acc_has_text: 3, acc_no_context: 3 });
  });

  it('matches it for a second model too', () => {
    const scores = scoreScienceQa(problems, readResultsFile(join(SQA, 'results-alt.json')));
    expect(scores.printed).toEqual(expected.alt.scores);
    expect(scores.topics).toEqual(Object.fromEntries(Object.entries(expected.alt.topics).map(([k, v]) => [k, Number(v)])));
    expect(scores.correct).toBe(expected.alt.correct);
  });

  it("rounds as Python's \"{:.2f}\" does", () => {
    for (const [x, printed] of expected.format2) expect(formatPercent(x)).toBe(printed);
    expect((0.125).toFixed(2)).toBe('0.13'); // why formatPercent exists
  });

  it('refuses results that leave questions out, unless asked to count them wrong', () => {
    const partial = { ...expected.parsed };
    delete partial['12'];
    expect(() => scoreScienceQa(problems, partial)).toThrow(/no prediction for 1 of the 8 "test" questions \(pid 12\)/);
    const scores = scoreScienceQa(problems, { ...partial, '1': 0 }, { allowMissing: true });
    expect(scores).toMatchObject({ correct: 3, ignored: 1 });
    expect(() => scoreScienceQa(problems, {}, { split: 'minitest' })).toThrow(ScienceQaError);
  });

  it('scores stored examples of the folder and the parquet copy alike', async () => {
    const { ws } = tempWorkspace('sqa-score');
    const folder = await importDataset(ws, SQA);
    const fromFolder = problemsFromExamples(ws.datasets.iterate(folder.dataset.id));
    expect(scoreScienceQa(fromFolder, expected.parsed).printed).toEqual(expected.scores);

    const hf = await importDataset(ws, join(import.meta.dirname, 'fixtures', 'scienceqa-parquet'), { name: 'hf' });
    const examples = [...ws.datasets.iterate(hf.dataset.id)];
    const fromParquet = problemsFromExamples(examples);
    const pidOf = new Map([...ws.datasets.iterate(folder.dataset.id)].map((e) => [e.instruction, e.meta.pid as string]));
    const results = Object.fromEntries(examples.filter((e) => e.split === 'test').map((e) => [`example:${e.id}`, expected.parsed[pidOf.get(e.instruction)!]!]));
    expect(scoreScienceQa(fromParquet, results).printed).toEqual(expected.scores);
    ws.close();
  });

  it('names the problem and field of a broken problems file', () => {
    const dir = makeTempDir('sqa-broken');
    const file = writeJsonFile(dir, 'problems.json', { '7': { choices: ['a'], answer: 3, hint: '', subject: 'x', grade: 'grade1', split: 'test' } });
    expect(() => readProblemsFile(file)).toThrow(/problem "7": field "answer" must be the index of a choice, got 3/);
    const results = writeJsonFile(dir, 'results.json', { results: { '7': 'B' } });
    expect(() => readResultsFile(results)).toThrow(/results\["7"\] must be a choice index, got "B"/);
  });
});

describe('adapter-studio eval-scienceqa', () => {
  async function cli(args: string[]) {
    let stdout = '';
    let stderr = '';
    const code = await main(args, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s) });
    return { code, stdout, stderr };
  }

  it('prints the official keys with two decimals and the per-topic accuracies', async () => {
    const out = await cli(['eval-scienceqa', '--problems', join(SQA, 'problems.json'), '--results', join(SQA, 'results.json'), '--json']);
    expect(out).toMatchObject({ code: 0, stderr: '' });
    const json = JSON.parse(out.stdout);
    for (const [k, v] of Object.entries(expected.scores)) expect(json[k]).toBe(Number(v));
    expect(json.topics.physics).toBe(50);
    expect(json).toMatchObject({ split: 'test', questions: 8, correct: 3 });

    const text = await cli(['eval-scienceqa', '--problems', SQA, '--results', join(SQA, 'results.json')]);
    expect(text.stdout).toContain('natural: \t66.67\n');
    expect(text.stdout).toContain('average: \t37.50\n');
    expect(text.stdout).toContain('  physics: \t50.00\n');
  });

  it('says what is wrong with its inputs', async () => {
    const out = await cli(['eval-scienceqa', '--problems', SQA]);
    expect(out).toMatchObject({ code: 1, stderr: 'error: missing --results\n' });
    const val = await cli(['eval-scienceqa', '--problems', SQA, '--results', join(SQA, 'results.json'), '--split', 'val']);
    expect(val.stderr).toMatch(/no prediction for 1 of the 1 "val" questions \(pid 4\)/);
  });
});
