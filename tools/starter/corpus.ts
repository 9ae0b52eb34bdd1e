// From WordNet to the starter's text: a plain-text pre-training corpus (one short dictionary-style
// document per synset), a held-out set of such documents, and an Alpaca-format demo dataset whose
// answers are WordNet facts the corpus states (so an adapter can learn to bring them out).
//
// Answers are phrased as the corpus phrases the fact ("The opposite of secure is insecure."): the
// adapter then has to learn when to say what the base model already says, not a new way of saying
// it. With a 4M-parameter base, bare one-word answers trained to a loss ~1.5 nats higher and scored
// no better than the base (measured while building the starter).
//
// Only synsets tagged in WordNet's semantic concordance are used (the senses of everyday English,
// 27k of 118k). The 2000 most tagged ("core") documents are repeated with their sentences shuffled,
// and the demo asks about core words only: a 4M-parameter model needs dozens of exposures to a
// fact before it can recall it. Measured while building the starter: with every document once
// (2.2 passes in the hour) or only the 8k most tagged (6 passes), the base model completed
// "The opposite of sound is" wrongly for 99% of demo words, and the adapter's exact match stayed
// at 0-1%.

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
 * The sentences of a synset's document, e.g. for dog:
 *   "dog means a member of the genus Canis ...", "A dog is a kind of canine.",
 *   "dog is another word for domestic dog.", "The dog barked all night."
 * The phrasings are the ones the demo's answers use.
 */
export function synsetSentences(wn: WordNet, s: Synset): string[] {
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
  return parts;
}

/** One synset's document: its sentences in order, one line of plain text. */
export function synsetDocument(wn: WordNet, s: Synset): string {
  return synsetSentences(wn, s).join(' ');
}

export interface DemoExample extends Instruction {
  task: DemoTask;
}

export const DEMO_TASKS = ['define', 'synonym', 'hypernym', 'antonym', 'sentence'] as const;
export type DemoTask = (typeof DEMO_TASKS)[number];

export interface StarterText {
  keptSynsets: number; // synsets with at least minTagCount tags (and a definition)
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
  /** The most tagged synsets: their documents are repeated, and the demo asks about them. */
  coreSize: number;
  /** Copies of each core document in the corpus (the first in order, the rest with sentences shuffled). */
  coreCopies: number;
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
  const core = new Set([...tagged].sort((a, b) => b.tagCount - a.tagCount || byId(a, b)).slice(0, o.coreSize));

  // Candidate questions per task, each tied to the word it is about.
  const candidates: Record<DemoTask, { word: string; synset: Synset; example: Omit<DemoExample, 'task'> }[]> = {
    define: [],
    synonym: [],
    hypernym: [],
    antonym: [],
    sentence: [],
  };
  for (const s of tagged) {
    if (!core.has(s) || !isDominantHead(s)) continue;
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
  const shuffled = Object.fromEntries(DEMO_TASKS.map((t) => [t, shuffle(candidates[t], rng)])) as typeof candidates;
  for (const task of DEMO_TASKS) {
    for (const c of shuffled[task]) {
      if (test.filter((e) => e.task === task).length >= o.testPerTask) break;
      if (testWords.has(c.word)) continue;
      testWords.add(c.word);
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
      taken++;
    }
  }

  // Held-out documents: outside the core, so every demo answer is in the corpus.
  const heldOutSet = new Set(shuffle(tagged.filter((s) => !core.has(s)), rng).slice(0, o.heldOutDocuments));
  const documents: string[] = [];
  const heldOut: string[] = [];
  for (const s of tagged) {
    if (heldOutSet.has(s)) {
      heldOut.push(synsetDocument(wn, s));
      continue;
    }
    documents.push(synsetDocument(wn, s));
    if (!core.has(s)) continue;
    // Common senses come up often, as in real text. Each repeat orders the sentences differently, so
    // a fact is seen after varied contexts and can be recalled from a prompt rather than only from
    // the sentence that preceded it (Allen-Zhu & Li, "Physics of Language Models 3.1", 2023).
    const sentences = synsetSentences(wn, s);
    for (let copy = 1; copy < o.coreCopies; copy++) documents.push(shuffle(sentences, rng).join(' '));
  }
  return { keptSynsets: tagged.length, documents: shuffle(documents, rng), heldOut, train: shuffle(train, rng), test };
}
