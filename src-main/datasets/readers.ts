// Container readers: turn a stream of text chunks into raw records with their position, without holding the
// whole file. What a record means (Alpaca fields, a conversation) is decided later, in records.ts.
//
//   JSON  - one list of records: `[ {...}, {...} ]`. A small scanner finds where each element starts and
//           ends (tracking strings and nesting), then JSON.parse reads just that element.
//   JSONL - one JSON value per line; blank lines are skipped.
//   CSV/TSV - csv-parse; the first row is the header.

import { parse as parseCsv, CsvError } from 'csv-parse';
import { Readable } from 'node:stream';
import { FatalFileIssue } from './issues.js';

export type RawRecord =
  | { index: number; line: number; value: unknown; problem?: undefined }
  | { index: number; line: number; value?: undefined; problem: string };

export interface ReaderLimits {
  /** Longest record accepted, in characters; longer ones are reported and skipped, never buffered whole. */
  maxRecordChars: number;
}

const fatal = (file: string, line: number | null, message: string, index: number | null = null) =>
  new FatalFileIssue({ file, line, index, field: null, message });

function parseError(err: unknown): string {
  return `not valid JSON (${(err as Error).message})`;
}

function tooLong(limit: number): string {
  return `the record is longer than ${limit} characters; it was skipped (raise the record size limit to import it)`;
}

// --- JSON list ----------------------------------------------------------------------------------------------

const enum C {
  Newline = 10,
  Quote = 34,
  Backslash = 92,
  Comma = 44,
  OpenBrace = 123,
  CloseBrace = 125,
  OpenBracket = 91,
  CloseBracket = 93,
  Space = 32,
  Tab = 9,
  Return = 13,
}

const isSpace = (c: number) => c === C.Space || c === C.Newline || c === C.Tab || c === C.Return;

// Inside an element only a few characters matter; a regex jumps to the next one, which is what makes the
// scan fast (a character-by-character loop was 6x slower than JSON.parse of the same text).
const STRING_STOP = /["\\]/g;
const STRUCTURE_STOP = /["{}[\]]/g;

function countNewlines(text: string, from: number, to: number): number {
  let n = 0;
  for (let at = text.indexOf('\n', from); at !== -1 && at < to; at = text.indexOf('\n', at + 1)) n++;
  return n;
}

/** Reads `[ elem, elem, ... ]`, yielding each element with its index and starting line. */
export async function* readJsonList(file: string, chunks: AsyncIterable<string>, limits: ReaderLimits): AsyncGenerator<RawRecord> {
  type State = 'start' | 'expectElement' | 'element' | 'afterElement' | 'end';
  let state: State = 'start';
  let line = 1; // the line at position `counted` of the current chunk
  let index = 0;
  // The element being scanned.
  let startLine = 0;
  let depth = 0; // open { and [ inside the element
  let inString = false;
  let escaped = false; // a backslash ended the previous chunk
  let scalar = false; // a top-level number or literal: ends at "," "]" or whitespace
  let parts: string[] = []; // its text from earlier chunks
  let partsLength = 0;
  let oversized = false;

  const finish = (text: string): RawRecord => {
    const at = { index: index++, line: startLine };
    if (oversized || text.length > limits.maxRecordChars) return { ...at, problem: tooLong(limits.maxRecordChars) };
    try {
      return { ...at, value: JSON.parse(text) };
    } catch (err) {
      return { ...at, problem: parseError(err) };
    }
  };

  for await (const chunk of chunks) {
    let counted = 0;
    const lineAt = (pos: number) => {
      line += countNewlines(chunk, counted, pos);
      counted = pos;
      return line;
    };
    let elementFrom = state === 'element' ? 0 : -1; // where the element's text starts in this chunk
    const out: RawRecord[] = [];
    const endElement = (end: number) => {
      out.push(finish(oversized ? '' : parts.join('') + chunk.slice(elementFrom, end)));
      parts = [];
      elementFrom = -1;
      state = 'afterElement';
    };

    let i = 0;
    while (i < chunk.length) {
      if (state === 'element') {
        if (escaped) {
          escaped = false;
          i++;
        } else if (inString) {
          STRING_STOP.lastIndex = i;
          const m = STRING_STOP.exec(chunk);
          if (!m) break;
          i = m.index;
          if (chunk.charCodeAt(i) === C.Backslash) {
            if (i + 1 < chunk.length) i += 2;
            else {
              escaped = true;
              i++;
            }
          } else {
            inString = false;
            i++;
            if (depth === 0) endElement(i);
          }
        } else if (scalar) {
          const c = chunk.charCodeAt(i);
          if (c === C.Comma || c === C.CloseBracket || isSpace(c)) endElement(i); // afterElement reads c
          else i++;
        } else {
          STRUCTURE_STOP.lastIndex = i;
          const m = STRUCTURE_STOP.exec(chunk);
          if (!m) break;
          i = m.index;
          const c = chunk.charCodeAt(i++);
          if (c === C.Quote) inString = true;
          else if (c === C.OpenBrace || c === C.OpenBracket) depth++;
          else if (--depth === 0) endElement(i);
        }
        continue;
      }

      const c = chunk.charCodeAt(i);
      if (isSpace(c)) {
        i++;
        continue;
      }
      switch (state as State) {
        case 'start':
          if (c !== C.OpenBracket) {
            const got = c === C.OpenBrace ? 'an object' : JSON.stringify(chunk[i]);
            throw fatal(file, lineAt(i), `expected a JSON list of records starting with "[", got ${got} (for one JSON object per line use a .jsonl file)`);
          }
          state = 'expectElement';
          break;
        case 'expectElement':
          if (c === C.CloseBracket && index === 0) {
            state = 'end';
            break;
          }
          if (c === C.Comma || c === C.CloseBracket) throw fatal(file, lineAt(i), `expected a record after "," but found ${JSON.stringify(chunk[i])}`, index);
          state = 'element';
          startLine = lineAt(i);
          elementFrom = i;
          parts = [];
          partsLength = 0;
          oversized = false;
          inString = c === C.Quote;
          depth = c === C.OpenBrace || c === C.OpenBracket ? 1 : 0;
          scalar = !inString && depth === 0;
          if (scalar) continue; // the scalar loop reads this character too
          break;
        case 'afterElement':
          if (c === C.Comma) state = 'expectElement';
          else if (c === C.CloseBracket) state = 'end';
          else throw fatal(file, lineAt(i), `expected "," or "]" after record ${index - 1}, found ${JSON.stringify(chunk[i])}`);
          break;
        case 'end':
          throw fatal(file, lineAt(i), `unexpected ${JSON.stringify(chunk[i])} after the closing "]" of the list`);
      }
      i++;
    }

    if (state === 'element') {
      // The element continues in the next chunk: keep its text unless it is already too long.
      const piece = chunk.slice(elementFrom);
      partsLength += piece.length;
      if (partsLength > limits.maxRecordChars) {
        oversized = true;
        parts = [];
      } else if (!oversized) parts.push(piece);
    }
    lineAt(chunk.length);
    yield* out;
  }

  if (state === 'element' && scalar) {
    yield finish(parts.join(''));
    state = 'afterElement';
  }
  switch (state as State) {
    case 'start':
      throw fatal(file, null, 'the file is empty; expected a JSON list of records');
    case 'element':
      throw fatal(file, startLine, `the file ends inside record ${index} (started on line ${startLine}): truncated, or a string or bracket is never closed`, index);
    case 'expectElement':
    case 'afterElement':
      throw fatal(file, line, `the file ends before the list is closed with "]" (truncated${index > 0 ? ` after record ${index - 1}` : ''}?)`);
    case 'end':
      return;
  }
}

// --- JSON Lines ---------------------------------------------------------------------------------------------

export async function* readJsonLines(file: string, chunks: AsyncIterable<string>, limits: ReaderLimits): AsyncGenerator<RawRecord> {
  let line = 0;
  let index = 0;
  let pending: string[] = [];
  let pendingLength = 0;
  let oversized = false;

  const finish = (text: string, lastLine: boolean): RawRecord | null => {
    line++;
    if (oversized) {
      oversized = false;
      return { index: index++, line, problem: tooLong(limits.maxRecordChars) };
    }
    const trimmed = text.trim();
    if (trimmed === '') return null;
    const at = { index: index++, line };
    try {
      return { ...at, value: JSON.parse(trimmed) };
    } catch (err) {
      if (at.index === 0 && trimmed.startsWith('[')) {
        throw fatal(file, line, 'this looks like a JSON list, not JSON Lines (one record per line); give the file a .json extension');
      }
      const hint = lastLine ? '; the last line has no newline, so the file may be truncated' : '';
      return { ...at, problem: parseError(err) + hint };
    }
  };

  for await (const chunk of chunks) {
    let from = 0;
    for (let nl = chunk.indexOf('\n'); nl !== -1; nl = chunk.indexOf('\n', from)) {
      const text = oversized ? '' : pending.join('') + chunk.slice(from, nl);
      pending = [];
      pendingLength = 0;
      if (!oversized && text.length > limits.maxRecordChars) oversized = true;
      const rec = finish(text, false);
      if (rec) yield rec;
      from = nl + 1;
    }
    if (from < chunk.length) {
      const rest = chunk.slice(from);
      pendingLength += rest.length;
      if (pendingLength > limits.maxRecordChars) {
        oversized = true;
        pending = [];
      } else if (!oversized) pending.push(rest);
    }
  }
  if (pending.length || oversized) {
    const rec = finish(pending.join(''), true);
    if (rec) yield rec;
  }
  if (index === 0) throw fatal(file, null, 'the file has no records (it is empty or only blank lines)');
}

// --- CSV / TSV ------------------------------------------------------------------------------------------------

export interface CsvRow {
  index: number;
  line: number;
  /** Cell values by header name. */
  cells: Record<string, string>;
  /** Set when the row's column count differs from the header's. */
  problem?: string;
}

/**
 * Reads delimited text with a header row. Quoted cells may span lines. A malformed quote stops the read
 * (everything after it would be misread).
 */
export async function* readDelimited(
  file: string,
  chunks: AsyncIterable<string>,
  delimiter: string,
  limits: ReaderLimits,
): AsyncGenerator<CsvRow | { header: string[] }> {
  const parser = parseCsv({
    delimiter,
    bom: true,
    info: true,
    raw: true,
    relax_quotes: true,
    relax_column_count: true,
    skip_empty_lines: true,
    max_record_size: limits.maxRecordChars,
  });
  const input = Readable.from(chunks, { objectMode: false });
  input.on('error', (err) => parser.destroy(err));
  input.pipe(parser);

  let header: string[] | null = null;
  let index = 0;
  try {
    for await (const { record, info, raw } of parser as AsyncIterable<{ record: string[]; info: { lines: number }; raw: string }>) {
      // info.lines is the line where the record ends; count back over newlines inside it to where it starts.
      const body = raw.replace(/^[\r\n]+/, '').replace(/\r?\n$/, '');
      const line = info.lines - (body.match(/\n/g)?.length ?? 0);
      if (!header) {
        header = record.map((h) => h.trim());
        const seen = new Set<string>();
        for (const h of header) {
          if (h === '') throw fatal(file, line, 'the header row has an empty column name');
          if (seen.has(h)) throw fatal(file, line, `the header row names column "${h}" twice`);
          seen.add(h);
        }
        yield { header };
        continue;
      }
      const cells: Record<string, string> = {};
      header.forEach((h, k) => (cells[h] = record[k] ?? ''));
      const row: CsvRow = { index: index++, line, cells };
      if (record.length !== header.length) row.problem = `has ${record.length} columns, the header has ${header.length}`;
      yield row;
    }
  } catch (err) {
    if (err instanceof FatalFileIssue) throw err;
    if (err instanceof CsvError) {
      const line = (err as CsvError & { lines?: number }).lines ?? null;
      const message =
        err.code === 'CSV_MAX_RECORD_SIZE'
          ? `a row is longer than ${limits.maxRecordChars} characters (an unclosed quote makes the rest of the file one cell)`
          : err.code === 'CSV_QUOTE_NOT_CLOSED'
            ? 'a quoted cell is never closed (truncated file or a stray quote)'
            : `cannot read the ${delimiter === '\t' ? 'TSV' : 'CSV'}: ${err.message}`;
      throw fatal(file, line, message);
    }
    throw err;
  } finally {
    input.destroy(); // closes the file when reading stops early
  }
  if (!header) throw fatal(file, null, 'the file is empty; expected a header row and records');
  if (index === 0) throw fatal(file, null, 'the file has a header row but no records');
}
