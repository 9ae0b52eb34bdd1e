// Process entry of the `adapter-studio` command (bundled to dist/cli.mjs by tools/build.mjs).
import { main, processIO } from './main.js';

main(process.argv.slice(2), processIO).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`internal error: ${(e as Error).stack ?? e}\n`);
    process.exitCode = 70;
  },
);
