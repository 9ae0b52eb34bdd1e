// The contract's complaints ({path: "sampling.maxNewTokens", message}) as a form shows them: each beside the field
// it belongs to, and what belongs to no field in words ("max new tokens: Too small…"), never as schema text.

export interface FieldIssue {
  path: string;
  message: string;
}

/** "sampling.maxNewTokens" -> "max new tokens"; "systems.2.label" -> "label (item 3)"; "(request)" -> "". */
export function readablePath(path: string): string {
  if (path === '(request)' || path === '') return '';
  const parts = path.split('.');
  const items = parts.filter((p) => /^\d+$/.test(p)).map((p) => Number(p) + 1);
  const names = parts.filter((p) => !/^\d+$/.test(p));
  const last = names.at(-1) ?? '';
  const words = last
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/[_-]+/g, ' ')
    .toLowerCase();
  return items.length ? `${words} (item ${items.join(', ')})` : words;
}

/** Every issue as one line a person reads: "max new tokens: must be at least 1; temperature: …". */
export function issuesInWords(issues: readonly FieldIssue[]): string {
  return issues
    .map((i) => {
      const where = readablePath(i.path);
      return where ? `${where}: ${i.message}` : i.message;
    })
    .join('; ');
}

/**
 * Sorts issues into the form's fields (`fieldOf` names the field a request path is shown beside, or null) and
 * the rest, said in words. The first issue of a field wins: one message per field.
 */
export function placeIssues(issues: readonly FieldIssue[], fieldOf: (path: string) => string | null): { fields: Record<string, string>; rest: string | null } {
  const fields: Record<string, string> = {};
  const rest: FieldIssue[] = [];
  for (const issue of issues) {
    const field = fieldOf(issue.path);
    if (field && !(field in fields)) fields[field] = issue.message;
    else if (!field) rest.push(issue);
  }
  return { fields, rest: rest.length ? issuesInWords(rest) : null };
}
