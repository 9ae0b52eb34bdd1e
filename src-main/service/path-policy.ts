// Which folders and files on this machine a client may name in a request (a model folder, a dataset file, a
// workspace). Locally, in serve mode, any: the user types paths on their own machine. Where the page is less
// trusted than the process, only paths under allowed roots: `serve --allow-remote` (other machines reach it;
// roots from --root, and the workspace), and the desktop app, where paths come from the main process's file
// dialogs (each choice is allowed as it is made) and a page that was made to send another path is refused.
//
// Paths are compared after resolving symbolic links, so a link under a root cannot lead out of it.

import { existsSync, realpathSync } from 'node:fs';
import { basename, dirname, join, relative, resolve, sep, isAbsolute } from 'node:path';
import type { ApiMethod, ApiParsedInput } from '../../src-shared/api.js';
import { userError } from './errors.js';

export interface PathPolicy {
  /** Throws a user error when `path` is outside what this process lets clients name; `what` says which input. */
  check(path: string, what: string): void;
  /** From now on `path` and everything under it may be named (a folder or file chosen in a dialog). */
  allow(path: string): void;
  /** The roots, or null when any path may be named. */
  roots(): string[] | null;
}

/** Local use: any path. */
export function anyPath(): PathPolicy {
  return { check: () => undefined, allow: () => undefined, roots: () => null };
}

/** Only paths inside one of `roots` (and whatever is allowed later). */
export function pathsUnder(roots: string[]): PathPolicy {
  const allowed = new Set<string>(roots.map(realPath));
  return {
    check(path, what) {
      const real = realPath(path);
      for (const root of allowed) if (isInside(real, root)) return;
      throw userError(
        `${what} ${JSON.stringify(basename(path))} is outside the folders this server may read; ` +
          (allowed.size ? `allowed: ${[...allowed].map((r) => JSON.stringify(r)).join(', ')}` : 'choose it with the file dialog'),
      );
    },
    allow(path) {
      allowed.add(realPath(path));
    },
    roots: () => [...allowed],
  };
}

function isInside(path: string, root: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

/** The path with every symbolic link resolved; a path that does not exist yet resolves through its nearest existing parent. */
function realPath(path: string): string {
  let head = resolve(path);
  const rest: string[] = [];
  while (!existsSync(head)) {
    const parent = dirname(head);
    if (parent === head) break;
    rest.unshift(basename(head));
    head = parent;
  }
  return join(realpathSync(head), ...rest);
}

/** Every path a request names, with the input it came from; methods not listed name none. */
export function requestPaths(method: ApiMethod, input: unknown): { path: string; what: string }[] {
  const out: { path: string; what: string }[] = [];
  const add = (path: string | undefined, what: string) => {
    if (path) out.push({ path, what });
  };
  switch (method) {
    case 'datasets.validate':
    case 'datasets.import': {
      const i = input as ApiParsedInput<'datasets.import'>;
      if (i.source.kind === 'path') add(i.source.path, 'the dataset file');
      add(i.options.imageRoot, 'the image folder');
      break;
    }
    case 'models.add':
      add((input as ApiParsedInput<'models.add'>).path, 'the model folder');
      break;
    case 'settings.switchWorkspace':
      add((input as ApiParsedInput<'settings.switchWorkspace'>).path, 'the workspace folder');
      break;
    case 'runs.importJob': {
      const i = input as ApiParsedInput<'runs.importJob'>;
      add(i.jobDir, 'the job folder');
      add(i.outputDir, 'the job output folder');
      break;
    }
  }
  return out;
}
