// `adapter-studio export-gguf`: a Hugging Face LLaMA folder as an F32 GGUF file for llama.cpp and its tools.

import { EngineError } from '../engine/errors.js';
import { exportGguf, GGUF_WEIGHT_TYPES, type GgufWeightType } from '../engine/gguf.js';
import { flag, type IO, parseFlags, requireFlag } from './flags.js';

export const EXPORT_GGUF_USAGE = `adapter-studio export-gguf --model DIR --out FILE.gguf [--type f32|q8_0|q4_0] [--name NAME] [--json]
  Writes the model in DIR (config.json, safetensors, tokenizer.json) as GGUF v3 with its tokenizer, for llama.cpp:
  float32 weights, or the matrices in llama.cpp's Q8_0 / Q4_0 blocks (norms stay float32). Merge an adapter into
  the weights first if you want it in the file.`;

export async function exportGgufCommand(args: string[], io: IO): Promise<number> {
  const flags = parseFlags(args, { model: 'string', out: 'string', name: 'string', type: 'string', json: 'boolean' });
  const type = (flag(flags, 'type') ?? 'f32') as GgufWeightType;
  if (!GGUF_WEIGHT_TYPES.includes(type)) throw new EngineError(`--type must be one of ${GGUF_WEIGHT_TYPES.join(', ')}, got "${type}"`);
  const modelDir = requireFlag(flags, 'model');
  const out = requireFlag(flags, 'out');
  if (!out.endsWith('.gguf')) throw new EngineError(`--out must name a .gguf file, got "${out}"`);
  const result = exportGguf(modelDir, out, { name: flag(flags, 'name'), type });
  if (flags.json) io.stdout(`${JSON.stringify(result)}\n`);
  else {
    const mb = (result.bytes / 1e6).toFixed(1);
    const storage = result.type === 'f32' ? 'float32' : `${result.quantizedTensors} matrices as ${result.type.toUpperCase()}, the rest float32`;
    io.stdout(`wrote ${result.path}: ${result.tensors} tensors, ${mb} MB, ${storage}, ${result.tokenizer} tokenizer (${result.vocabSize} tokens)\n`);
  }
  return 0;
}
