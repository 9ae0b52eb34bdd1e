"""Greedy decoding with a KV cache on transformers + PyTorch CPU: the decode peer of `node bench/run.mjs --family`
for families llama.cpp is not given here (the GGUF exporter writes plain LLaMA only).

The same loop as bench/engine-bench.ts `decode`: the prompt in one forward, then one token per forward with the
cache, argmax each time; one warm-up run, then the timed one. Prints one JSON object on stdout.

    python3 bench/hf_decode.py --model DIR --prompt FILE --tokens 128 --threads 2
"""

import argparse
import json
import os
import resource
import sys
import time

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--model", required=True)
p.add_argument("--prompt", required=True, help="JSON list of prompt token ids")
p.add_argument("--tokens", type=int, default=128)
p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
args = p.parse_args()
os.environ["OMP_NUM_THREADS"] = str(args.threads)
os.environ["MKL_NUM_THREADS"] = str(args.threads)

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402


def main():
    torch.set_num_threads(args.threads)
    with open(args.prompt) as f:
        prompt = json.load(f)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()

    @torch.inference_mode()
    def run():
        t0 = time.perf_counter()
        out = model(input_ids=torch.tensor([prompt]), use_cache=True)
        tokens = [int(out.logits[0, -1].argmax())]
        past = out.past_key_values
        t1 = time.perf_counter()
        while len(tokens) < args.tokens:
            out = model(input_ids=torch.tensor([[tokens[-1]]]), past_key_values=past, use_cache=True)
            past = out.past_key_values
            tokens.append(int(out.logits[0, -1].argmax()))
        t2 = time.perf_counter()
        return tokens, t1 - t0, t2 - t1

    run()  # warm-up
    tokens, prefill, decode = run()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "engine": "transformers",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "model_type": model.config.model_type,
        "threads": torch.get_num_threads(),
        "prompt_tokens": len(prompt),
        "generated": len(tokens),
        "prefill_ms": prefill * 1000,
        "decode_tokens_per_sec": (len(tokens) - 1) / decode,
        "tokens": tokens,
        "peak_rss_bytes": rss if sys.platform == "darwin" else rss * 1024,
    }))


if __name__ == "__main__":
    main()
