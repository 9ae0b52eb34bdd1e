// `adapter-studio export-gguf`: a Hugging Face LLaMA folder as an F32 GGUF file for llama.cpp and its tools.

import { EngineError } from '../engine/errors.js';
import { exportGguf } from '../engine/gguf.js';
import { flag, type IO, parseFlags, requireFlag } from './flags.js';

export const EXPORT_GGUF_USAGE = `adapter-studio export-gguf --model DIR --out FILE.gguf [--name NAME] [--json]
  Writes the model in DIR (config.json, safetensors, tokenizer.json) as GGUF v3, float32 weights, with its
  tokenizer, for llama.cpp. Merge an adapter into the weights first if you want it in the file.`;

export async function exportGgufCommand(args: string[], io: IO): Promise<number> {
  const flags = parseFlags(args, { model: 'string', out: 'string', name: 'string', json: 'boolean' });
  const modelDir = requireFlag(flags, 'model');
  const out = requireFlag(flags, 'out');
  if (!out.endsWith('.gguf')) throw new EngineError(`--out must name a .gguf file, got "${out}"`);
  const result = exportGguf(modelDir, out, { name: flag(flags, 'name') });
  if (flags.json) io.stdout(`${JSON.stringify(result)}\n`);
  else {
    const mb = (result.bytes / 1e6).toFixed(1);
    io.stdout(`wrote ${result.path}: ${result.tensors} tensors, ${mb} MB, float32, ${result.tokenizer} tokenizer (${result.vocabSize} tokens)\n`);
  }
  return 0;
}
