// `adapter-studio eval-scienceqa`: ScienceQA's accuracy table for a results file (ours or anyone's), with the
// official key names (see src-main/evaluation/scienceqa.ts).

import { formatPercent, readProblemsFile, readResultsFile, SCIENCEQA_KEYS, ScienceQaError, scoreScienceQa } from '../evaluation/scienceqa.js';
import { EngineError } from '../engine/errors.js';
import { flag, type IO, parseFlags, requireFlag } from './flags.js';

export const EVAL_SCIENCEQA_USAGE = `  eval-scienceqa --problems FILE|DIR --results FILE [--split test] [--allow-missing] [--json]
            ScienceQA's accuracy table as tools/evaluate_acc.py computes it (acc_average, acc_natural, ...,
            two decimals) plus per-topic accuracies; --problems is problems.json or the folder holding it,
            --results is {"results": {"<pid>": <choice index>}}; --allow-missing counts absent pids wrong
`;

export async function evalScienceQaCommand(args: string[], io: IO): Promise<number> {
  const flags = parseFlags(args, { problems: 'string', results: 'string', split: 'string', 'allow-missing': 'boolean', json: 'boolean', help: 'boolean' });
  if (flags.help) {
    io.stdout(`adapter-studio\n${EVAL_SCIENCEQA_USAGE}`);
    return 0;
  }
  let scores;
  try {
    const problems = readProblemsFile(requireFlag(flags, 'problems'));
    const results = readResultsFile(requireFlag(flags, 'results'));
    scores = scoreScienceQa(problems, results, { split: flag(flags, 'split') ?? 'test', allowMissing: flags['allow-missing'] === true });
  } catch (e) {
    if (e instanceof ScienceQaError) throw new EngineError(e.message);
    throw e;
  }
  if (flags.json) {
    io.stdout(`${JSON.stringify({ ...scores.scores, topics: scores.topics, split: scores.split, questions: scores.questions, correct: scores.correct, counts: scores.counts, notAChoice: scores.notAChoice, ignored: scores.ignored }, null, 2)}\n`);
    return 0;
  }
  const lines = [`${scores.correct} of ${scores.questions} "${scores.split}" questions right`];
  for (const key of SCIENCEQA_KEYS) lines.push(`${key.slice(4)}: \t${scores.printed[key] ?? 'n/a (no such question)'}`);
  lines.push('', 'per topic:');
  for (const [topic, acc] of Object.entries(scores.topics)) lines.push(`  ${topic}: \t${formatPercent(acc)}`);
  if (scores.notAChoice.length) lines.push('', `${scores.notAChoice.length} prediction(s) name no choice of their question (counted wrong): pid ${scores.notAChoice.slice(0, 10).join(', ')}${scores.notAChoice.length > 10 ? ', ...' : ''}`);
  if (scores.ignored) lines.push(`${scores.ignored} result(s) for pids outside the split were ignored`);
  io.stdout(`${lines.join('\n')}\n`);
  return 0;
}
