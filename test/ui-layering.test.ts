// Where code runs decides what it may import: the contract (src-shared) imports only zod; the renderer only
// the contract, svelte and chart.js (never Node or the main process); Electron only inside
// src-main/electron; the preload only the bridge and the name list.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');

function files(dir: string, exts: string[]): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p, exts));
    else if (exts.some((e) => name.endsWith(e))) out.push(p);
  }
  return out;
}

function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|^\s*import\s+['"]([^'"]+)['"]/gm)].map((m) => m[1] ?? m[2] ?? m[3]);
}

function violations(dir: string, exts: string[], allowed: (spec: string, file: string) => boolean): string[] {
  return files(join(ROOT, dir), exts).flatMap((f) => imports(f).filter((s) => !allowed(s, f)).map((s) => `${relative(ROOT, f)} imports ${s}`));
}

describe('import layering', () => {
  it('src-shared imports only zod and itself', () => {
    expect(violations('src-shared', ['.ts'], (s) => s === 'zod' || s.startsWith('./'))).toEqual([]);
  });

  it('the renderer imports only the contract, its own files, svelte and chart.js', () => {
    const ok = (s: string, file: string) => {
      if (!s.startsWith('.')) return /^(svelte(\/.*)?|chart\.js)$/.test(s);
      const target = relative(ROOT, join(dirname(file), s));
      return target.startsWith('src-renderer/') || target.startsWith('src-shared/');
    };
    expect(violations('src-renderer/src', ['.ts', '.svelte'], ok)).toEqual([]);
  });

  it('Electron is imported only by the shell, and the preload pulls in nothing heavy', () => {
    const outside = ['src-main/service', 'src-main/host', 'src-main/server', 'src-main/engine', 'src-main/store', 'src-main/datasets', 'src-main/cli', 'src-shared'];
    for (const dir of outside) expect(violations(dir, ['.ts'], (s) => s !== 'electron')).toEqual([]);
    expect(imports(join(ROOT, 'src-main/electron/preload.ts')).sort()).toEqual(['./bridge.js', 'electron']);
    expect(imports(join(ROOT, 'src-main/electron/bridge.ts')).sort()).toEqual(['../../src-shared/api-methods.js', '../../src-shared/api.js']);
  });

  it('the main side imports in one direction: no module reaches itself through its imports', () => {
    // Value imports only: `import type` is erased and cannot make a cycle at run time.
    const graph = new Map<string, string[]>();
    for (const f of files(join(ROOT, 'src-main'), ['.ts'])) {
      const text = readFileSync(f, 'utf8');
      const specs = [...text.matchAll(/^\s*(?:import|export)\s+(?!type\s)[^'"]*?from\s+['"](\.[^'"]+)['"]/gm)].map((m) => m[1]!);
      graph.set(f, specs.map((s) => join(dirname(f), s.replace(/\.js$/, '.ts'))));
    }
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const visit = (n: string) => {
      state.set(n, 'open');
      stack.push(n);
      for (const m of graph.get(n) ?? []) {
        if (!graph.has(m)) continue;
        if (state.get(m) === 'open') cycles.push(stack.slice(stack.indexOf(m)).map((x) => relative(ROOT, x)).join(' -> '));
        else if (!state.has(m)) visit(m);
      }
      stack.pop();
      state.set(n, 'done');
    };
    for (const n of graph.keys()) if (!state.has(n)) visit(n);
    expect(cycles).toEqual([]);
  });
});
