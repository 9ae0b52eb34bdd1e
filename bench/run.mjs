#!/usr/bin/env node
// `npm run bench`: our engine against its peers on one machine, in one run, on the same model and data.
//
//   - adapter training: ours (native backend) vs PEFT's adaption prompt on transformers + PyTorch CPU
//     (bench/peft_bench.py), and ours on plain wasm for context: tokens/s, ms/step, peak RSS, MFU;
//   - greedy decoding with a KV cache: ours vs llama.cpp (node-llama-cpp, CPU build) on the same weights as GGUF F32;
//   - this machine's sgemm peak, which MFU is measured against.
// Prints a table of ratios and writes bench/results.md. Every measurement runs in its own process (so each peak
// RSS is one engine's), and training and decoding alternate ours / peer for --rounds rounds, so that load from other
// processes on a shared machine falls on both; each engine's fastest step is the headline, its median beside it.
//
//   node bench/run.mjs [--rounds 2] [--steps 5] [--threads N] [--skip-wasm] [--out bench/results.md]
//   node bench/run.mjs --probe-memory [--steps 3]    where our training process's memory goes (bench/mem-probe.ts)
//   node bench/run.mjs --multimodal [--steps 6]      the image term's cost per training step (bench/results/multimodal-step.md)
//   node bench/run.mjs --vision [--rounds 2]         CLIP image features, ours vs transformers (bench/results/vision-features.md)
//   node bench/run.mjs --family qwen2 [--rounds 2]   the reference shape as Qwen2 (biased q/k/v): training vs PEFT's adaption
//                                                    prompt (Qwen2 registered with PEFT's LLaMA layout), decoding vs
//                                                    transformers (bench/results/family-qwen2.md)
//
// Needs: the native addon (tools/build-native.mjs), python3 with torch, transformers and peft, node-llama-cpp.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = parseArgs(process.argv.slice(2));
const threads = Number(args.threads ?? os.availableParallelism());
const rounds = Number(args.rounds ?? 2);
const steps = Number(args.steps ?? 5);
const work = path.join(root, 'dist', 'bench'); // the bundle
const data = path.join(work, 'data'); // model folder, GGUF, batches (rewritten when the reference config changes)
const outFile = path.resolve(args.out ?? path.join(root, 'bench', 'results.md'));
const log = (line) => process.stderr.write(`[bench] ${line}\n`);

function parseArgs(argv) {
  const flags = {};
  for (let i = 0; i < argv.length; i++) {
    if (!argv[i].startsWith('--')) throw new Error(`unexpected argument "${argv[i]}"`);
    const next = argv[i + 1];
    flags[argv[i].slice(2)] = next === undefined || next.startsWith('--') ? true : argv[++i];
  }
  return flags;
}

/** Runs a command that prints one JSON object; returns it, or { error } with the reason. */
function runJson(command, commandArgs, { timeoutSec = 1800, env = {} } = {}) {
  const started = Date.now();
  const result = spawnSync(command, commandArgs, {
    cwd: root,
    encoding: 'utf8',
    timeout: timeoutSec * 1000,
    maxBuffer: 64 << 20,
    env: { ...process.env, ...env },
  });
  const seconds = ((Date.now() - started) / 1000).toFixed(0);
  const lines = (result.stdout ?? '').trim().split('\n');
  try {
    const value = JSON.parse(lines[lines.length - 1]);
    log(`${path.basename(commandArgs[0])} ${commandArgs[1] ?? ''} ${commandArgs.slice(2).join(' ')}: ok (${seconds} s)`);
    return value;
  } catch {
    const stderr = (result.stderr ?? '').trim().split('\n').filter(Boolean);
    const reason = result.error?.message ?? (result.signal ? `killed by ${result.signal}` : stderr.slice(-3).join(' | ') || `exit ${result.status}`);
    log(`${commandArgs.join(' ')}: FAILED after ${seconds} s: ${reason}`);
    return { error: reason };
  }
}

async function bundle() {
  const addon = path.join(root, 'native', 'build', 'Release', 'adapter_native.node');
  if (!fs.existsSync(addon)) {
    log('building the native addon');
    spawnSync(process.execPath, [path.join(root, 'tools', 'build-native.mjs')], { stdio: 'inherit' });
  }
  fs.mkdirSync(work, { recursive: true });
  await build({
    entryPoints: [path.join(root, 'bench', 'engine-bench.ts'), path.join(root, 'bench', 'mem-probe.ts')],
    outdir: work,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    mainFields: ['module', 'main'],
    external: ['node-llama-cpp', 'better-sqlite3', 'sharp', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu', 'webgpu'],
    logLevel: 'warning',
    banner: {
      js: [
        "import { createRequire as __createRequire } from 'node:module';",
        "import { fileURLToPath as __fileURLToPath } from 'node:url';",
        'const require = __createRequire(import.meta.url);',
        'const __filename = __fileURLToPath(import.meta.url);',
        "const __dirname = __filename.slice(0, __filename.lastIndexOf('/'));",
      ].join(' '),
    },
  });
  return { bench: path.join(work, 'engine-bench.mjs'), probe: path.join(work, 'mem-probe.mjs') };
}

const fmt = (x, digits = 1) => (x === undefined || x === null || Number.isNaN(x) ? 'n/a' : x.toFixed(digits));
const mb = (bytes) => (bytes ? `${(bytes / 1e6).toFixed(0)} MB` : 'n/a');
const ratio = (a, b) => (a && b ? a / b : NaN);
const verdict = (ok) => (ok ? 'met' : 'NOT met');
const best = (runs, key, pick = Math.max) => {
  const ok = runs.filter((r) => !r.error);
  if (ok.length === 0) return runs[0] ?? { error: 'not run' };
  const value = pick(...ok.map((r) => r[key]));
  return ok.find((r) => r[key] === value);
};

function cpuName() {
  const model = os.cpus()[0]?.model ?? 'unknown CPU';
  return `${model}, ${os.cpus().length} logical cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB`;
}

/**
 * The reference shape in another family's layout: our adapter training step against PEFT's adaption prompt on the
 * same folder and batches, and greedy decoding against transformers (llama.cpp needs a GGUF, which we write for plain
 * LLaMA only). Ratios from alternating rounds in one run, as the main bench.
 */
async function familyBench(family, node, startedAt, loadBefore) {
  const dir = path.join(work, `data-${family}`);
  const prepared = node('prepare', ['--dir', dir, '--family', family]);
  if (prepared.error) throw new Error(`could not prepare the ${family} model: ${prepared.error}`);
  const ours = [];
  const peft = [];
  const decodeOurs = [];
  const decodeHf = [];
  for (let round = 1; round <= rounds; round++) {
    log(`${family} round ${round}/${rounds}: training ours, PEFT; decoding ours, transformers`);
    ours.push(node('train', ['--dir', dir, '--backend', 'native', '--steps', String(steps), '--threads', String(threads), '--profile', 'false']));
    peft.push(runJson('python3', [path.join(root, 'bench', 'peft_bench.py'), '--model', path.join(dir, 'model'), '--batches', path.join(dir, 'batches.json'), '--adapter-len', '10', '--adapter-layers', '6', '--steps', String(steps), '--threads', String(threads)]));
    decodeOurs.push(node('decode', ['--dir', dir, '--threads', String(threads)]));
    decodeHf.push(runJson('python3', [path.join(root, 'bench', 'hf_decode.py'), '--model', path.join(dir, 'model'), '--prompt', path.join(dir, 'decode-prompt.json'), '--threads', String(threads)]));
  }
  const withFastest = (runs) => runs.map((r) => (r.error ? r : { ...r, fastest_ms: Math.min(...r.step_ms) }));
  const o = best(withFastest(ours), 'fastest_ms', Math.min);
  const p = best(withFastest(peft), 'fastest_ms', Math.min);
  const d = best(decodeOurs, 'decode_tokens_per_sec');
  const h = best(decodeHf, 'decode_tokens_per_sec');
  const tokens = (o.batch ?? 4) * (o.seq ?? 256);
  const trainX = ratio(p.fastest_ms, o.fastest_ms);
  const decodeX = ratio(d.decode_tokens_per_sec, h.decode_tokens_per_sec);
  const same = d.tokens && h.tokens ? d.tokens.findIndex((t, i) => t !== h.tokens[i]) : -2;
  const md = [
    `# The reference shape as ${family}: ours vs PEFT and transformers`,
    '',
    `Written by \`node bench/run.mjs --family ${family}\` on ${startedAt.toISOString()} (${cpuName()}, ${threads} threads, load ${loadBefore.map((v) => v.toFixed(2)).join(' / ')}).`,
    `The main bench's model (dim 512, 8 layers, 8 heads, ffn 1376, vocab 32000, random weights) in ${family}'s layout${family === 'qwen2' ? ' (biased q/k/v, no BOS)' : ''};`,
    `adapter K = 10 on the top 6 layers, PEFT's per-layer gate, batch ${o.batch ?? 4} x ${o.seq ?? 256}, AdamW; PEFT's adaption prompt with Qwen2 registered under its`,
    `LLaMA layout (its own query computation; PEFT ships llama and mistral only). Decoding: 128 greedy tokens after a 32-token prompt with the KV cache,`,
    `ours (native) vs transformers on PyTorch CPU, the same loop. Best of ${rounds} alternating rounds (other work may share the machine: both engines see it).`,
    '',
    '| | ours | peer | ratio (ours / peer speed) |',
    '|---|---|---|---|',
    `| training step, fastest (ms) | ${fmt(o.fastest_ms, 0)} | ${fmt(p.fastest_ms, 0)} (PEFT) | ${fmt(trainX, 2)} |`,
    `| training tokens/s | ${fmt(tokens / (o.fastest_ms / 1000), 0)} | ${fmt(tokens / (p.fastest_ms / 1000), 0)} | |`,
    `| training peak RSS | ${mb(o.peak_rss_bytes)} | ${mb(p.peak_rss_bytes)} | |`,
    `| decode tokens/s | ${fmt(d.decode_tokens_per_sec, 1)} | ${fmt(h.decode_tokens_per_sec, 1)} (transformers) | ${fmt(decodeX, 2)} |`,
    `| decode peak RSS | ${mb(d.peak_rss_bytes)} | ${mb(h.peak_rss_bytes)} | |`,
    '',
    same === -1 ? 'Both engines decode the same 128 greedy tokens.' : same === -2 ? 'Tokens not compared (a run failed).' : `The greedy tokens first differ at position ${same} (random weights: near-ties in argmax).`,
    `Losses, ours: ${(o.losses ?? []).map((x) => x.toFixed(4)).join(', ')}; PEFT: ${(p.losses ?? []).map((x) => x.toFixed(4)).join(', ')}.`,
    '',
  ];
  const file = path.join(root, 'bench', 'results', `family-${family}.md`);
  fs.writeFileSync(file, md.join('\n'));
  process.stdout.write(md.join('\n'));
}

async function main() {
  const startedAt = new Date();
  const loadBefore = os.loadavg();
  const { bench, probe } = await bundle();
  const node = (command, flags, options) => runJson(process.execPath, ['--max-old-space-size=4096', bench, command, ...flags], options);

  if (args.family && args.family !== 'llama') {
    await familyBench(String(args.family), node, startedAt, loadBefore);
    return;
  }

  log(`preparing the reference model and data in ${path.relative(root, data)}`);
  const prepared = node('prepare', ['--dir', data]);
  if (prepared.error) throw new Error(`could not prepare the benchmark data: ${prepared.error}`);

  if (args['probe-memory']) {
    const flags = ['--dir', data, '--steps', String(args.steps ?? 3), '--threads', String(threads)];
    const result = spawnSync(process.execPath, ['--max-old-space-size=4096', probe, ...flags], { cwd: root, stdio: 'inherit' });
    process.exit(result.status ?? 1);
  }

  if (args.vision) {
    const dir = path.join(work, 'clip-b16');
    if (!fs.existsSync(path.join(dir, 'img15.png'))) {
      const made = runJson('python3', [path.join(root, 'bench', 'clip_bench.py'), '--make', dir]);
      if (made.error) throw new Error(`could not make the CLIP folder: ${made.error}`);
    }
    const results = { ours: [], transformers: [] };
    for (let r = 0; r < rounds; r++) {
      results.ours.push(node('vision-features', ['--dir', dir, '--threads', String(threads), '--rounds', '2']));
      results.transformers.push(runJson('python3', [path.join(root, 'bench', 'clip_bench.py'), '--dir', dir, '--threads', String(threads), '--rounds', '2']));
    }
    const ours = best(results.ours, 'images_per_sec');
    const peer = best(results.transformers, 'images_per_sec');
    const x = ratio(ours.images_per_sec, peer.images_per_sec);
    const md = [
      '# CLIP image features: ours vs transformers',
      '',
      `Written by \`node bench/run.mjs --vision\` on ${startedAt.toISOString()} (${cpuName()}, ${threads} threads, load ${loadBefore.map((v) => v.toFixed(2)).join(' / ')}).`,
      'A ViT-B/16-shaped random CLIPVisionModelWithProjection (768 wide, 12 layers, 224 px, 197 tokens; bench/clip_bench.py --make),',
      `image_embeds of 16 PNGs of assorted sizes (300-495 x 295-400 px) in batches of 8, decoding and CLIP preprocessing included;`,
      `ours on the native backend, transformers ${'5.x'} on PyTorch CPU (CLIPImageProcessorPil), same threads; best of ${rounds} alternating rounds.`,
      '',
      '| | ours | transformers | ratio | goal |',
      '|---|---|---|---|---|',
      `| images/s | ${fmt(ours.images_per_sec, 2)} | ${fmt(peer.images_per_sec, 2)} | ${fmt(x, 2)} | >= 1.0 (${verdict(x >= 1)}) |`,
      '',
      `Rounds (s for 16 images), ours: ${results.ours.flatMap((r) => r.seconds ?? []).map((v) => v.toFixed(2)).join(', ')}; transformers: ${results.transformers.flatMap((r) => r.seconds ?? []).map((v) => v.toFixed(2)).join(', ')}.`,
      '',
    ];
    const file = path.join(root, 'bench', 'results', 'vision-features.md');
    fs.writeFileSync(file, md.join('\n'));
    process.stdout.write(md.join('\n'));
    return;
  }

  if (args.multimodal) {
    const r = node('multimodal-step', ['--dir', data, '--steps', String(args.steps ?? 6), '--threads', String(threads)]);
    if (r.error) throw new Error(`multimodal-step failed: ${r.error}`);
    const pct = (x) => `${(100 * x).toFixed(1)}%`;
    const md = [
      '# The image term\'s cost per adapter training step',
      '',
      `Written by \`node bench/run.mjs --multimodal\` on ${startedAt.toISOString()} (${cpuName()}, ${r.threads} threads, load ${loadBefore.map((x) => x.toFixed(2)).join(' / ')}).`,
      `Reference model of bench/results.md, batch ${r.batch} x ${r.seq}, adapter K = 10 on the top 6 layers (per-head tanh gates); the multi-modal`,
      `step adds an image feature per example (F = ${r.feature_dim}, ViT-L/14's projected embedding, precomputed as the frozen tower's cache gives it)`,
      `and the projection (width ${r.projection_hidden}). Text-only and multi-modal steps alternate in one process.`,
      '',
      '| | text-only | multi-modal | overhead | target |',
      '|---|---|---|---|---|',
      `| trainable parameters | ${r.trainable.text} | ${r.trainable.multimodal} | | |`,
      `| fastest step (ms) | ${fmt(r.fastest_ms.text, 0)} | ${fmt(r.fastest_ms.multimodal, 0)} | ${pct(r.overhead_fastest)} | < 5% (${verdict(r.overhead_fastest < 0.05)}) |`,
      `| median step (ms) | ${fmt(r.median_ms.text, 0)} | ${fmt(r.median_ms.multimodal, 0)} | ${pct(r.overhead_median)} | |`,
      '',
      `Steps (ms), text-only: ${r.step_ms.text.map((x) => x.toFixed(0)).join(', ')}; multi-modal: ${r.step_ms.multimodal.map((x) => x.toFixed(0)).join(', ')}.`,
      '',
    ];
    const file = path.join(root, 'bench', 'results', 'multimodal-step.md');
    fs.writeFileSync(file, md.join('\n'));
    process.stdout.write(md.join('\n'));
    return;
  }

  // The peak is measured once per round too and the highest kept: like the fastest training step, it is what the
  // machine does when other processes leave it alone.
  const sgemmRuns = [];
  const measurePeak = () => {
    log('measuring the sgemm peak');
    sgemmRuns.push(node('sgemm', ['--threads', String(threads)]));
  };
  measurePeak();

  const ours = [];
  const peft = [];
  for (let round = 1; round <= rounds; round++) {
    if (round > 1) measurePeak();
    log(`training round ${round}/${rounds}: ours (native), then PEFT`);
    ours.push(node('train', ['--dir', data, '--backend', 'native', '--steps', String(steps), '--threads', String(threads), '--profile', round === 1 ? 'true' : 'false']));
    peft.push(
      runJson('python3', [
        path.join(root, 'bench', 'peft_bench.py'),
        '--model', path.join(data, 'model'),
        '--batches', path.join(data, 'batches.json'),
        '--adapter-len', '10',
        '--adapter-layers', '6',
        '--steps', String(steps),
        '--threads', String(threads),
      ]),
    );
  }
  const decodeOurs = [];
  const decodeLlama = [];
  for (let round = 1; round <= rounds; round++) {
    log(`decoding round ${round}/${rounds}: ours, then llama.cpp`);
    decodeOurs.push(node('decode', ['--dir', data, '--threads', String(threads)]));
    decodeLlama.push(node('decode-llama', ['--dir', data, '--threads', String(threads)]));
  }
  let wasm = { error: 'skipped (--skip-wasm)' };
  if (!args['skip-wasm']) {
    log('training on plain wasm (context; slow)');
    wasm = node('train', ['--dir', data, '--backend', 'wasm', '--steps', '1', '--profile', 'false'], { timeoutSec: 1200 });
  }
  measurePeak();
  const loadAfter = os.loadavg();
  const sgemm = best(sgemmRuns, 'peakGflops');

  // Under load from other processes, the fastest step is the best estimate of what each engine does on a quiet
  // machine; the median is reported beside it.
  const withFastest = (runs) => runs.map((r) => (r.error ? r : { ...r, fastest_ms: Math.min(...r.step_ms) }));
  const o = best(withFastest(ours), 'fastest_ms', Math.min);
  const p = best(withFastest(peft), 'fastest_ms', Math.min);
  const medianOf = (runs) => {
    const all = runs.filter((r) => !r.error).flatMap((r) => r.step_ms).sort((a, b) => a - b);
    return all.length ? all[Math.floor(all.length / 2)] : NaN;
  };
  const tokens = (o.batch ?? 4) * (o.seq ?? 256);
  const oursMedian = medianOf(ours);
  const peftMedian = medianOf(peft);
  const profiled = ours.find((r) => !r.error && r.profile?.kernels?.length) ?? o;
  const d = best(decodeOurs, 'decode_tokens_per_sec');
  const l = best(decodeLlama, 'decode_tokens_per_sec');
  const peak = sgemm.peakGflops;
  const flops = o.flops?.total;
  // MFU per round, against the peak measured just before that round (the load changes over a run), best round kept.
  const mfuOf = (runs) =>
    Math.max(
      ...runs.map((r, i) => {
        const roundPeak = sgemmRuns[i]?.peakGflops;
        return r.error || !flops || !roundPeak ? NaN : flops / (Math.min(...r.step_ms) / 1000) / 1e9 / roundPeak;
      }).filter((x) => !Number.isNaN(x)),
    );
  const mfuOurs = mfuOf(ours);
  const mfuPeft = mfuOf(peft);
  const perSec = (ms) => tokens / (ms / 1000);
  const memoryBase = o.error ? NaN : o.weight_bytes + o.optimizer_bytes + o.activation_bytes;
  const rssRatio = o.peak_rss_bytes / memoryBase;
  const sameTokens = (() => {
    if (!d.tokens || !l.tokens) return 'n/a';
    const n = Math.min(d.tokens.length, l.tokens.length);
    let i = 0;
    while (i < n && d.tokens[i] === l.tokens[i]) i++;
    return i === n ? `all ${n} identical` : `first ${i} of ${n} identical`;
  })();

  const table = [
    ['measure', 'ours (native)', 'peer', 'ratio', 'target', 'status'],
    ['training tokens/s (fastest step)', fmt(perSec(o.fastest_ms)), `${fmt(perSec(p.fastest_ms))} (PEFT)`, `${fmt(ratio(p.fastest_ms, o.fastest_ms), 2)}x`, '>= 1.5x', verdict(ratio(p.fastest_ms, o.fastest_ms) >= 1.5)],
    ['training tokens/s (median step)', fmt(perSec(oursMedian)), `${fmt(perSec(peftMedian))} (PEFT)`, `${fmt(ratio(peftMedian, oursMedian), 2)}x`, '', ''],
    ['training ms/step (fastest / median)', `${fmt(o.fastest_ms, 0)} / ${fmt(oursMedian, 0)}`, `${fmt(p.fastest_ms, 0)} / ${fmt(peftMedian, 0)} (PEFT)`, '', '', ''],
    ['training peak RSS', mb(o.peak_rss_bytes), `${mb(p.peak_rss_bytes)} (PEFT)`, `${fmt(ratio(o.peak_rss_bytes, p.peak_rss_bytes), 2)}x`, '', ''],
    ['peak RSS / (weights + optimizer + activations)', `${fmt(rssRatio, 2)}x`, '', '', '<= 1.3x', verdict(rssRatio <= 1.3)],
    ['MFU vs sgemm peak (best round)', `${fmt(100 * mfuOurs, 0)}%`, `${fmt(100 * mfuPeft, 0)}% (PEFT)`, '', '>= 50%', verdict(mfuOurs >= 0.5)],
    ['decode tokens/s (greedy, KV cache)', fmt(d.decode_tokens_per_sec), `${fmt(l.decode_tokens_per_sec)} (llama.cpp)`, `${fmt(ratio(d.decode_tokens_per_sec, l.decode_tokens_per_sec), 2)}x`, '>= 1.0x', verdict(ratio(d.decode_tokens_per_sec, l.decode_tokens_per_sec) >= 1.0)],
    ['training tokens/s on plain wasm (1 step)', wasm.error ? `failed: ${wasm.error.slice(0, 60)}` : fmt(wasm.tokens_per_sec, 2), '', wasm.error ? '' : `native is ${fmt(ratio(perSec(o.fastest_ms), wasm.tokens_per_sec), 1)}x faster`, '', ''],
  ];
  const widths = table[0].map((_, i) => Math.max(...table.map((row) => String(row[i]).length)));
  const text = table.map((row) => row.map((cell, i) => String(cell).padEnd(widths[i])).join('  ')).join('\n');
  process.stdout.write(`\n${text}\n\n`);

  const md = [];
  md.push('# Benchmark results', '');
  md.push(`Written by \`npm run bench\` (bench/run.mjs) on ${startedAt.toISOString()}. One run, one machine, same model and data for every engine.`, '');
  md.push('## Machine and settings', '');
  md.push(`- CPU: ${cpuName()}; load average ${loadBefore.map((x) => x.toFixed(2)).join(' / ')} at the start, ${loadAfter.map((x) => x.toFixed(2)).join(' / ')} at the end (1/5/15 min). Other processes share the cores, so timings vary from step to step; ours and PEFT alternate over ${rounds} round(s) so that the load falls on both.`);
  md.push(`- Threads: ${threads} for every engine. Ours: the addon's pool (${sgemm.blas ?? 'BLAS'}), each thread running single-threaded BLAS on its block. PEFT: ${p.threads ? Object.entries(p.threads).map(([k, v]) => `${k}=${v}`).join(', ') : 'n/a'}. llama.cpp: ${l.threads ?? 'n/a'} threads.`);
  md.push(`- Versions: Node ${process.version}; ${p.versions ? Object.entries(p.versions).map(([k, v]) => `${k} ${v}`).join(', ') : 'PyTorch n/a'}; ${l.version ?? 'node-llama-cpp n/a'}.`);
  md.push('- Model: LLaMA, dim 512, 8 layers, 8 heads (head dim 64), FFN 1376, vocabulary 32000, untied head, random weights written as a Hugging Face folder (safetensors F32) and exported to GGUF F32 by `adapter-studio export-gguf`.');
  md.push(`- Training: batch 4 x 256 tokens; adapter K = 10 prompt vectors on the top 6 layers, one gate per layer (PEFT's adaption-prompt form); AdamW. Labels: each sequence's first 64-128 tokens are the instruction, unlabelled (-100) as in Alpaca-style tuning; the loss covers the other ${o.labelled ?? 'n/a'} of ${(o.batch ?? 4) * ((o.seq ?? 256) - 1)} predicted positions. Our engine computes the vocabulary head only for labelled positions; transformers computes it for all. ${steps} timed steps after a warm-up step in each of ${rounds} round(s), ours and PEFT alternating; the fastest step of each engine is the headline (the least disturbed by other processes), the median of all its steps is shown beside it.`);
  md.push(`- Decoding: a ${d.prompt_tokens ?? 32}-token prompt, then greedy tokens up to ${d.generated ?? 128} (prefill excluded from tokens/s). llama.cpp with F32 KV cache and flash attention off, the arithmetic ours does; greedy tokens of the two: ${sameTokens}.`);
  md.push('');
  md.push('## Results', '');
  md.push('| ' + table[0].join(' | ') + ' |');
  md.push('|' + table[0].map(() => '---').join('|') + '|');
  for (const row of table.slice(1)) md.push('| ' + row.join(' | ') + ' |');
  md.push('');
  md.push('## Details', '');
  md.push(`- sgemm peak (our addon, ${sgemm.threads ?? threads} threads, OpenBLAS per block), measured before each training round and once at the end: ${sgemmRuns.map((r) => fmt(r.peakGflops, 0)).join(', ')} GFLOP/s; the best, ${fmt(peak)}: ${(sgemm.shapes ?? []).map((s) => `${s.m}x${s.n}x${s.k}: ${fmt(s.gflops)}`).join(', ')}. MFU divides a round's fastest step by the peak measured just before it, so both see about the same load.`);
  md.push(`- Training step FLOPs (needed work, multiply-add = 2): forward ${fmt((o.flops?.forward ?? 0) / 1e9)} G, backward ${fmt((o.flops?.backward ?? 0) / 1e9)} G (input gradients only: the base is frozen; gradients pass through the top 5 adapted layers and, in the lowest adapted layer, through wo, the MLP and the prompt branch; the head counts labelled positions only). On its fastest step ours runs at ${fmt(flops / (o.fastest_ms / 1000) / 1e9)} GFLOP/s, PEFT at ${fmt(flops / (p.fastest_ms / 1000) / 1e9)} GFLOP/s on the same count.`);
  md.push(`- Step times (ms), ours: ${ours.map((r) => (r.error ? `failed (${r.error})` : r.step_ms.map((x) => x.toFixed(0)).join(', '))).join(' | ')}; PEFT: ${peft.map((r) => (r.error ? `failed (${r.error})` : r.step_ms.map((x) => x.toFixed(0)).join(', '))).join(' | ')}.`);
  md.push(`- Losses after warm-up, ours: ${o.losses ? o.losses.map((x) => x.toFixed(4)).join(', ') : 'n/a'}; PEFT: ${p.losses ? p.losses.map((x) => x.toFixed(4)).join(', ') : 'n/a'}.`);
  md.push(`- Memory, ours: weights ${mb(o.weight_bytes)}, optimizer (adapter values + AdamW moments) ${mb(o.optimizer_bytes)}, activations kept for backward ${mb(o.activation_bytes)} (saved tensors on the tape at the end of the forward pass, each buffer once, weights excluded); peak RSS ${mb(o.peak_rss_bytes)} for the whole process, model loading and Node itself included; RSS after loading ${mb(o.rss_after_load_bytes)}, after each step ${(o.rss_after_step_bytes ?? []).map(mb).join(', ')}.`);
  md.push(`- Decode, ours: prefill ${fmt(d.prefill_ms, 0)} ms, peak RSS ${mb(d.peak_rss_bytes)}; llama.cpp: prefill ${fmt(l.prefill_ms, 0)} ms, peak RSS ${mb(l.peak_rss_bytes)}.`);
  md.push('');
  if (profiled.profile?.kernels?.length) {
    const total = profiled.profile.kernels.reduce((s, k) => s + k.ms, 0);
    md.push('## Per-kernel profile of one training step (ours, native)', '');
    md.push(`tf.profile over one step (${fmt(profiled.profile.step_ms, 0)} ms wall, ${fmt(total, 0)} ms in kernels; the rest is JavaScript and tfjs bookkeeping). Forward and backward kernels together; \`As*\` are the fused kernels.`, '');
    md.push('| kernel | ms | share | calls |');
    md.push('|---|---|---|---|');
    for (const k of profiled.profile.kernels.filter((k) => k.ms >= 0.5)) md.push(`| ${k.name} | ${fmt(k.ms, 0)} | ${fmt((100 * k.ms) / total, 1)}% | ${k.calls} |`);
    md.push('');
  }
  md.push('## Raw results', '', '```json', JSON.stringify({ sgemm: sgemmRuns, ours, peft, wasm, decodeOurs: decodeOurs.map(({ tokens, ...r }) => r), decodeLlama: decodeLlama.map(({ tokens, ...r }) => r) }, null, 1), '```', '');
  fs.writeFileSync(outFile, md.join('\n'));
  log(`wrote ${path.relative(root, outFile)}`);
}

main().catch((e) => {
  process.stderr.write(`[bench] ${e.stack ?? e}\n`);
  process.exit(1);
});
