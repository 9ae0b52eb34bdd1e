// Process entry of dist/serve.mjs: serve mode without the rest of the CLI (used by tools/start.mjs and e2e).
import { EngineError } from '../engine/errors.js';
import { serveCommand } from '../cli/serve-command.js';

const io = { stdout: (s: string) => void process.stdout.write(s), stderr: (s: string) => void process.stderr.write(s) };

serveCommand(process.argv.slice(2), io).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof EngineError) process.stderr.write(`error: ${e.message}\n`);
    else process.stderr.write(`internal error: ${(e as Error).stack ?? e}\n`);
    process.exitCode = e instanceof EngineError ? 1 : 70;
  },
);
