#!/usr/bin/env node
// Runs the bundled CLI; `npm run build` makes it.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const bundle = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli.mjs');
if (!existsSync(bundle)) {
  process.stderr.write(`adapter-studio is not built yet (${bundle} is missing): run "npm run build"\n`);
  process.exit(1);
}
await import(pathToFileURL(bundle).href);
