// The normalised text hash behind exact-duplicate detection. Two examples are exact duplicates when they differ
// only in case, Unicode compatibility forms (NFKC: full-width letters, ligatures) and whitespace.

import { createHash } from 'node:crypto';

export function normalizeText(text: string): string {
  // NFKC leaves ASCII unchanged; skipping it there makes hashing a 50K-example import several times faster.
  const nfkc = /^[\x00-\x7f]*$/.test(text) ? text : text.normalize('NFKC');
  return nfkc.toLowerCase().replace(/\s+/g, ' ').trim();
}

/** sha1 of the normalised instruction, input and output. Each part is length-prefixed so that text moving
 * from one field to the next ("ab" + "" versus "a" + "b") changes the hash. An example's image (the sha256 of its
 * bytes) is part of it: the same question about two different pictures is not a duplicate. Without an image the
 * hash is what it always was. */
export function contentHash(instruction: string, input: string, output: string, image: string | null = null): string {
  const h = createHash('sha1');
  for (const part of [instruction, input, output]) {
    const normalized = normalizeText(part);
    h.update(`${normalized.length}:`);
    h.update(normalized);
  }
  if (image) h.update(`image:${image}`);
  return h.digest('hex');
}
