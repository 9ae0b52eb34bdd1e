// OpenAssistant message trees (the oasst export's *.trees.jsonl) import as chats along their top-ranked path:
// at each turn the reply of lowest rank. Read from a real file by the importer, as a user's download would be.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readDatasetFile } from '../src-main/datasets/index.js';
import { makeTempDir } from './helpers/tmp.js';

/** Two branches at the first reply (rank 1 and rank 0), a follow-up under the rank-0 one, and an unranked reply. */
const TREE = {
  message_tree_id: 'tree-1',
  tree_state: 'ready_for_export',
  prompt: {
    message_id: 'm1',
    role: 'prompter',
    lang: 'en',
    text: 'What is the capital of France?',
    replies: [
      { message_id: 'm2', role: 'assistant', rank: 1, text: 'Lyon.', replies: [] },
      {
        message_id: 'm3',
        role: 'assistant',
        rank: 0,
        text: 'Paris.',
        replies: [
          {
            message_id: 'm4',
            role: 'prompter',
            text: 'And of Italy?',
            replies: [
              { message_id: 'm5', role: 'assistant', rank: null, text: 'Milan, I think.', replies: [] },
              { message_id: 'm6', role: 'assistant', rank: 0, text: 'Rome.', replies: [] },
            ],
          },
        ],
      },
    ],
  },
};

function file(records: unknown[]): string {
  const path = join(makeTempDir('oasst'), '2023-04-12_oasst_ready.trees.jsonl');
  writeFileSync(path, records.map((r) => JSON.stringify(r)).join('\n'));
  return path;
}

describe('OpenAssistant message trees', () => {
  it('take the top-ranked path: the last reply with the turns before it as context', async () => {
    const { report, examples } = await readDatasetFile(file([TREE]));
    expect(report.invalidRecords).toBe(0);
    expect(examples).toHaveLength(1);
    expect(examples[0]).toMatchObject({ instruction: 'And of Italy?', input: 'User: What is the capital of France?\n\nAssistant: Paris.', output: 'Rome.' });
  });

  it('give one example per reply along the path with each-turn', async () => {
    const { examples } = await readDatasetFile(file([TREE]), { conversation: 'each-turn' });
    expect(examples.map((e) => e.output)).toEqual(['Paris.', 'Rome.']);
  });

  it('prefer a ranked reply over an unranked one, whatever the order', async () => {
    const tree = structuredClone(TREE);
    tree.prompt.replies[1]!.replies![0]!.replies = [...tree.prompt.replies[1]!.replies![0]!.replies!].reverse();
    const { examples } = await readDatasetFile(file([tree]));
    expect(examples[0]!.output).toBe('Rome.');
  });

  it('name the place in the tree of what is wrong', async () => {
    const broken = structuredClone(TREE) as unknown as { prompt: { replies: unknown[] } };
    (broken.prompt.replies[1] as { replies: unknown }).replies = 'none';
    const { report } = await readDatasetFile(file([broken]));
    expect(report.invalidRecords).toBe(1);
    expect(report.issues[0]).toMatchObject({ line: 1, field: 'prompt.replies[1].replies', message: 'expected a list of replies, got text' });
  });
});
