// A reader for the Princeton WordNet 3.0 database files (data.noun, data.verb, data.adj, data.adv,
// cntlist.rev), as Debian's `wordnet-base` package installs them in /usr/share/wordnet.
//
// File format: wndb(5WN). Each data line is one synset:
//
//   offset lex_filenum ss_type w_cnt(hex) [word lex_id(hex)]... p_cnt(3 digits)
//   [pointer_symbol offset pos source/target(4 hex)]... [f_cnt [+ f_num w_num]...] | gloss
//
// The gloss holds the definition, then example sentences in double quotes, separated by "; ".
// Lines that start with two spaces are the licence header. Adjectives may carry a syntactic marker
// after the word: "(p)", "(a)" or "(ip)".

import fs from 'node:fs';
import path from 'node:path';

/** n noun, v verb, a adjective, s adjective satellite, r adverb. */
export type SynsetType = 'n' | 'v' | 'a' | 's' | 'r';

export interface SynsetWord {
  lemma: string; // as written in WordNet, spaces instead of underscores ("domestic dog")
  lexId: number;
}

export interface Pointer {
  symbol: string; // "@" hypernym, "!" antonym, "&" similar to, ... (wninput(5WN))
  offset: number;
  pos: SynsetType;
  /** 0 for a pointer between synsets; else 1-based word numbers (source in this synset, target in the other). */
  source: number;
  target: number;
}

export interface Synset {
  offset: number; // byte offset in its data file: the synset's id within its part of speech
  type: SynsetType;
  lexFile: number; // lexicographer file number (lexnames(5WN))
  words: SynsetWord[];
  pointers: Pointer[];
  definition: string;
  examples: string[]; // without the quotes
  tagCount: number; // how often its words were tagged with this sense in the semantic concordance (cntlist.rev)
}

export class WordNetFormatError extends Error {
  override name = 'WordNetFormatError';
}

const TYPES = new Set(['n', 'v', 'a', 's', 'r']);

/** Parse one data.* file. `file` names the source in errors ("data.noun line 41: ..."). */
export function parseDataFile(text: string, file: string): Synset[] {
  const synsets: Synset[] = [];
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (line.startsWith('  ') || line.trim() === '') return; // licence header, trailing newline
    try {
      synsets.push(parseDataLine(line));
    } catch (e) {
      throw new WordNetFormatError(`${file} line ${i + 1}: ${(e as Error).message}`);
    }
  });
  return synsets;
}

export function parseDataLine(line: string): Synset {
  const bar = line.indexOf(' | ');
  const fields = (bar >= 0 ? line.slice(0, bar) : line).trim().split(/\s+/);
  const gloss = bar >= 0 ? line.slice(bar + 3).trim() : '';
  let at = 0;
  const next = (what: string): string => {
    if (at >= fields.length) throw new Error(`the line ends before the ${what}`);
    return fields[at++];
  };
  const int = (what: string, radix: number): number => {
    const raw = next(what);
    const value = parseInt(raw, radix);
    if (!Number.isInteger(value) || value < 0) throw new Error(`${what} must be a number, got "${raw}"`);
    return value;
  };
  const offset = int('synset offset', 10);
  const lexFile = int('lex_filenum', 10);
  const type = next('ss_type');
  if (!TYPES.has(type)) throw new Error(`ss_type must be one of n, v, a, s, r, got "${type}"`);
  const wordCount = int('w_cnt', 16);
  const words: SynsetWord[] = [];
  for (let w = 0; w < wordCount; w++) {
    const raw = next(`word ${w + 1}`).replace(/\((a|p|ip)\)$/, ''); // drop the adjective position marker
    words.push({ lemma: raw.replace(/_/g, ' '), lexId: int(`lex_id of word ${w + 1}`, 16) });
  }
  const pointerCount = int('p_cnt', 10);
  const pointers: Pointer[] = [];
  for (let p = 0; p < pointerCount; p++) {
    const symbol = next(`pointer ${p + 1} symbol`);
    const target = int(`pointer ${p + 1} offset`, 10);
    const pos = next(`pointer ${p + 1} pos`);
    if (!TYPES.has(pos)) throw new Error(`pointer ${p + 1} pos must be one of n, v, a, s, r, got "${pos}"`);
    const st = next(`pointer ${p + 1} source/target`);
    if (!/^[0-9a-f]{4}$/.test(st)) throw new Error(`pointer ${p + 1} source/target must be 4 hex digits, got "${st}"`);
    pointers.push({ symbol, offset: target, pos: pos as SynsetType, source: parseInt(st.slice(0, 2), 16), target: parseInt(st.slice(2), 16) });
  }
  // Verb frames (data.verb only) follow; they are not needed here.
  const { definition, examples } = splitGloss(gloss);
  return { offset, type: type as SynsetType, lexFile, words, pointers, definition, examples, tagCount: 0 };
}

/** "definition; \"example one\"; \"example two\"" -> definition and examples. */
export function splitGloss(gloss: string): { definition: string; examples: string[] } {
  const examples: string[] = [];
  for (const m of gloss.matchAll(/"([^"]+)"/g)) {
    const example = m[1].trim();
    if (example !== '') examples.push(example);
  }
  const firstQuote = gloss.indexOf('"');
  const definition = (firstQuote >= 0 ? gloss.slice(0, firstQuote) : gloss).replace(/[;\s]+$/, '').trim();
  return { definition, examples };
}

/** WordNet's numbers for synset types in sense keys (senseidx(5WN)). */
const SENSE_KEY_TYPE: Record<SynsetType, number> = { n: 1, v: 2, a: 3, r: 4, s: 5 };

const DATA_FILES = { noun: 'data.noun', verb: 'data.verb', adj: 'data.adj', adv: 'data.adv' } as const;

export interface WordNet {
  /** Every synset, keyed by `${pos}:${offset}` with pos n, v, a (satellites too) or r. */
  synsets: Map<string, Synset>;
  /** The synset a pointer leads to. */
  follow(p: Pointer): Synset | undefined;
}

export function synsetKey(type: SynsetType, offset: number): string {
  return `${type === 's' ? 'a' : type}:${offset}`;
}

/**
 * Read the four data files and the sense counts from `dir` (e.g. /usr/share/wordnet).
 * Each synset's tagCount is the sum of its words' counts in cntlist.rev.
 */
export function readWordNet(dir: string): WordNet {
  const synsets = new Map<string, Synset>();
  for (const file of Object.values(DATA_FILES)) {
    const full = path.join(dir, file);
    if (!fs.existsSync(full)) {
      throw new WordNetFormatError(`${full} not found: install Debian's wordnet-base package (apt-get install wordnet-base)`);
    }
    for (const s of parseDataFile(fs.readFileSync(full, 'latin1'), full)) synsets.set(synsetKey(s.type, s.offset), s);
  }
  const follow = (p: Pointer) => synsets.get(synsetKey(p.pos, p.offset));

  // Sense key -> synset: lemma%type:lexfile:lexid:head_word:head_id (senseidx(5WN)); head_* only for satellites.
  const bySenseKey = new Map<string, Synset>();
  const two = (n: number) => String(n).padStart(2, '0');
  for (const s of synsets.values()) {
    let head = ':';
    if (s.type === 's') {
      const similar = s.pointers.find((p) => p.symbol === '&');
      const headSynset = similar && follow(similar);
      if (headSynset) head = `${headSynset.words[0].lemma.toLowerCase().replace(/ /g, '_')}:${two(headSynset.words[0].lexId)}`;
    }
    for (const w of s.words) {
      const lemma = w.lemma.toLowerCase().replace(/ /g, '_');
      bySenseKey.set(`${lemma}%${SENSE_KEY_TYPE[s.type]}:${two(s.lexFile)}:${two(w.lexId)}:${head}`, s);
    }
  }
  const counts = path.join(dir, 'cntlist.rev');
  if (fs.existsSync(counts)) {
    fs.readFileSync(counts, 'latin1').split('\n').forEach((line, i) => {
      if (line.trim() === '') return;
      const [key, , count] = line.trim().split(/\s+/);
      const n = Number(count);
      if (!key || !Number.isInteger(n)) throw new WordNetFormatError(`${counts} line ${i + 1}: expected "sense_key sense_number tag_cnt"`);
      const s = bySenseKey.get(key);
      if (s) s.tagCount += n;
    });
  }
  return { synsets, follow };
}
