// From WordNet to the starter's text: a plain-text pre-training corpus (one short dictionary-style
// document per synset), a held-out set of such documents, and an Alpaca-format demo dataset whose
// answers are WordNet facts the corpus states (so an adapter can learn to bring them out).
//
// Answers are phrased as the corpus phrases the fact ("The opposite of secure is insecure."): the
// adapter then has to learn when to say what the base model already says, not a new way of saying
// it. With a 4M-parameter base, bare one-word answers trained to a loss ~1.5 nats higher and scored
// no better than the base (measured while building the starter).
//
// Only synsets tagged often in WordNet's semantic concordance are used (minTagCount; the starter
// takes 5: 8.1k of 118k synsets, the commonest senses of everyday English). A 4M-parameter model
// needs several passes over a fact to retain it: with all 27k tagged synsets the hour of
// pre-training gave 2.2 passes, and the demo adapter's exact match stayed near 1%.

import { Rng } from '../../src-main/engine/rng.js';
import type { Instruction } from '../../src-main/engine/data.js';
import type { Synset, SynsetType, WordNet } from './wordnet.js';

const POS_NAME: Record<SynsetType, string> = { n: 'noun', v: 'verb', a: 'adjective', s: 'adjective', r: 'adverb' };

function article(word: string): string {
  return /^[aeiou]/i.test(word) ? 'an' : 'a';
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** An example phrase as a sentence: capital first letter, final full stop. */
function sentence(text: string): string {
  const t = capitalize(text.trim());
  return /[.!?]$/.test(t) ? t : `${t}.`;
}

/** The first hypernym (class or instance) of a noun or verb synset. */
export function hypernymOf(wn: WordNet, s: Synset): Synset | undefined {
  const p = s.pointers.find((x) => x.symbol === '@' || x.symbol === '@i');
  return p && wn.follow(p);
}

/** Lexical antonyms: [word in s, its opposite]. */
export function antonymsOf(wn: WordNet, s: Synset): [string, string][] {
  const out: [string, string][] = [];
  for (const p of s.pointers) {
    if (p.symbol !== '!' || p.source === 0) continue;
    const other = wn.follow(p);
    const word = s.words[p.source - 1]?.lemma;
    const opposite = other?.words[p.target - 1]?.lemma;
    if (word && opposite) out.push([word, opposite]);
  }
  return out;
}

/**
 * One document per synset, e.g.
 *   "dog means a member of the genus Canis ... A dog is a kind of canine. dog is another word for
 *    domestic dog. The dog barked all night."
 * The phrasings are the ones the demo tasks ask about.
 */
export function synsetDocument(wn: WordNet, s: Synset): string {
  const head = s.words[0].lemma;
  const parts: string[] = [`${head} means ${s.definition}.`];
  const hyper = hypernymOf(wn, s);
  if (hyper && s.type === 'n') parts.push(`${capitalize(article(head))} ${head} is a kind of ${hyper.words[0].lemma}.`);
  if (hyper && s.type === 'v') parts.push(`To ${head} is a way to ${hyper.words[0].lemma}.`);
  for (const w of s.words.slice(1)) {
    if (w.lemma.toLowerCase() !== head.toLowerCase()) parts.push(`${head} is another word for ${w.lemma}.`);
  }
  for (const [word, opposite] of antonymsOf(wn, s)) parts.push(`The opposite of ${word} is ${opposite}.`);
  for (const ex of s.examples) parts.push(sentence(ex));
  return parts.join(' ');
}

export interface DemoExample extends Instruction {
  task: DemoTask;
}

export const DEMO_TASKS = ['define', 'synonym', 'hypernym', 'antonym', 'sentence'] as const;
export type DemoTask = (typeof DEMO_TASKS)[number];

export interface StarterText {
  /** Pre-training documents (synsets not held out). */
  documents: string[];
  /** Documents of held-out synsets: never trained on; the loss check's text. */
  heldOut: string[];
  train: DemoExample[];
  test: DemoExample[];
}

export interface StarterTextOptions {
  seed: number;
  /** Keep synsets tagged at least this often in the semantic concordance (everyday senses). */
  minTagCount: number;
  heldOutDocuments: number;
  testPerTask: number;
  trainPerTask: Record<DemoTask, number>;
}

/** A plain lowercase word or phrase: what the demo asks about (no names, numbers or symbols). */
const PLAIN = /^[a-z][a-z -]*[a-z]$/;

function shuffle<T>(items: T[], rng: Rng): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** Deterministic order of synsets: by part of speech, then offset. */
function byId(a: Synset, b: Synset): number {
  return a.type.localeCompare(b.type) || a.offset - b.offset;
}

export function buildStarterText(wn: WordNet, o: StarterTextOptions): StarterText {
  const rng = new Rng(o.seed);
  const tagged = [...wn.synsets.values()].filter((s) => s.tagCount >= o.minTagCount && s.definition !== '').sort(byId);

  // A word's dominant sense per part of speech: questions about it then have one right answer.
  const dominant = new Map<string, Synset>(); // `${pos}:${lemma}` -> most tagged synset
  for (const s of tagged) {
    for (const w of s.words) {
      const key = `${POS_NAME[s.type]}:${w.lemma}`;
      const best = dominant.get(key);
      if (!best || s.tagCount > best.tagCount) dominant.set(key, s);
    }
  }
  const isDominantHead = (s: Synset) => PLAIN.test(s.words[0].lemma) && dominant.get(`${POS_NAME[s.type]}:${s.words[0].lemma}`) === s;

  // Candidate questions per task, each tied to the word it is about.
  const candidates: Record<DemoTask, { word: string; synset: Synset; example: Omit<DemoExample, 'task'> }[]> = {
    define: [],
    synonym: [],
    hypernym: [],
    antonym: [],
    sentence: [],
  };
  for (const s of tagged) {
    if (!isDominantHead(s)) continue;
    const w = s.words[0].lemma;
    const pos = POS_NAME[s.type];
    candidates.define.push({ word: w, synset: s, example: { instruction: `What does the ${pos} "${w}" mean?`, input: '', output: `${w} means ${s.definition}.` } });
    const synonym = s.words.slice(1).find((x) => PLAIN.test(x.lemma) && x.lemma !== w);
    if (synonym && s.words[1].lemma === synonym.lemma) {
      candidates.synonym.push({ word: w, synset: s, example: { instruction: `Give a synonym for this ${pos}.`, input: w, output: `${w} is another word for ${synonym.lemma}.` } });
    }
    const hyper = hypernymOf(wn, s);
    if (s.type === 'n' && hyper && PLAIN.test(hyper.words[0].lemma)) {
      const answer = `${capitalize(article(w))} ${w} is a kind of ${hyper.words[0].lemma}.`;
      candidates.hypernym.push({ word: w, synset: s, example: { instruction: `What kind of thing is ${article(w)} ${w}?`, input: '', output: answer } });
    }
    const antonym = antonymsOf(wn, s).find(([word, opposite]) => word === w && PLAIN.test(opposite));
    if (antonym) {
      candidates.antonym.push({ word: w, synset: s, example: { instruction: 'What is the opposite of this word?', input: w, output: `The opposite of ${w} is ${antonym[1]}.` } });
    }
    const usage = s.examples.find((ex) => new RegExp(`\\b${w}\\b`, 'i').test(ex));
    if (usage) {
      candidates.sentence.push({ word: w, synset: s, example: { instruction: `Use the ${pos} "${w}" in a sentence.`, input: '', output: sentence(usage) } });
    }
  }

  // Test words first (disjoint from training words across all tasks), then training examples.
  const testWords = new Set<string>();
  const test: DemoExample[] = [];
  const demoSynsets = new Set<Synset>();
  const shuffled = Object.fromEntries(DEMO_TASKS.map((t) => [t, shuffle(candidates[t], rng)])) as typeof candidates;
  for (const task of DEMO_TASKS) {
    for (const c of shuffled[task]) {
      if (test.filter((e) => e.task === task).length >= o.testPerTask) break;
      if (testWords.has(c.word)) continue;
      testWords.add(c.word);
      demoSynsets.add(c.synset);
      test.push({ task, ...c.example });
    }
  }
  const train: DemoExample[] = [];
  for (const task of DEMO_TASKS) {
    let taken = 0;
    for (const c of shuffled[task]) {
      if (taken >= o.trainPerTask[task]) break;
      if (testWords.has(c.word)) continue;
      train.push({ task, ...c.example });
      demoSynsets.add(c.synset);
      taken++;
    }
  }

  // Held-out documents: synsets no demo example is about, so every demo answer is in the corpus.
  const heldOutSet = new Set(shuffle(tagged.filter((s) => !demoSynsets.has(s)), rng).slice(0, o.heldOutDocuments));
  const documents: string[] = [];
  const heldOut: string[] = [];
  for (const s of tagged) (heldOutSet.has(s) ? heldOut : documents).push(synsetDocument(wn, s));
  return { documents: shuffle(documents, rng), heldOut, train: shuffle(train, rng), test };
}
