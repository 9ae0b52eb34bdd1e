"""PEFT's adaption prompt (LLaMA-Adapter) training on Hugging Face transformers + PyTorch CPU: the peer that
`npm run bench` (bench/run.mjs) compares our adapter training with.

Same model folder, same batches, same adapter (K prompt vectors on the top L layers, one gate per layer, PEFT's
form), same optimizer (AdamW) and loss (next-token cross-entropy over labelled positions) as bench/engine-bench.ts.
Prints one JSON object on stdout.

    python3 bench/peft_bench.py --model DIR --batches FILE --adapter-len 10 --adapter-layers 6 --steps 5 --threads 2

Threads: torch runs intra-op work on `--threads` threads; OMP/MKL are told the same before torch loads, and
OpenBLAS (which torch does not use for these ops) one, so nothing is oversubscribed. The settings are reported.
"""

import argparse
import json
import os
import resource
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="Hugging Face LLaMA folder (config.json + safetensors)")
    p.add_argument("--batches", required=True, help='JSON {"input_ids": [[...]], "labels": [[...]]} (labels -100 = ignored)')
    p.add_argument("--adapter-len", type=int, default=10)
    p.add_argument("--adapter-layers", type=int, default=6)
    p.add_argument("--steps", type=int, default=5, help="timed optimizer steps (after one warm-up step)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--lr", type=float, default=1e-3)
    return p.parse_args()


def register_qwen2_layout():
    """PEFT's adaption prompt knows llama and mistral; Qwen2's attention is LLaMA's with biased q/k/v, so PEFT's own
    LLaMA query computation (q_proj with its bias, then RoPE) and module names serve it unchanged."""
    from peft.tuners.adaption_prompt.config import TRANSFORMERS_MODEL_CONFIG

    TRANSFORMERS_MODEL_CONFIG.setdefault("qwen2", TRANSFORMERS_MODEL_CONFIG["mistral"])


args = parse_args()
# Before torch is imported, so its OpenMP runtime starts with these.
os.environ["OMP_NUM_THREADS"] = str(args.threads)
os.environ["MKL_NUM_THREADS"] = str(args.threads)
os.environ["OPENBLAS_NUM_THREADS"] = "1"

import torch  # noqa: E402
import transformers  # noqa: E402
import peft  # noqa: E402
from peft import AdaptionPromptConfig, get_peft_model  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402


def peak_rss_bytes() -> int:
    # ru_maxrss is in kilobytes on Linux, bytes on macOS.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def main():
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with open(args.batches) as f:
        data = json.load(f)
    input_ids = torch.tensor(data["input_ids"], dtype=torch.long)
    labels = torch.tensor(data["labels"], dtype=torch.long)
    batch, seq = input_ids.shape

    load_start = time.perf_counter()
    register_qwen2_layout()
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    config = AdaptionPromptConfig(adapter_len=args.adapter_len, adapter_layers=args.adapter_layers, task_type="CAUSAL_LM")
    model = get_peft_model(model, config)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=0.02)
    load_seconds = time.perf_counter() - load_start
    rss_after_load = peak_rss_bytes()

    def step():
        optimizer.zero_grad(set_to_none=True)
        out = model(input_ids=input_ids, labels=labels)
        out.loss.backward()
        optimizer.step()
        return float(out.loss.detach())

    step()  # warm-up: allocator, thread pool, kernel selection
    times, losses = [], []
    for _ in range(args.steps):
        start = time.perf_counter()
        losses.append(step())
        times.append(time.perf_counter() - start)

    ms = sorted(t * 1000 for t in times)
    median_ms = ms[len(ms) // 2]
    result = {
        "engine": "peft-adaption-prompt",
        "model_type": model.base_model.model.config.model_type,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
        "threads": {
            "torch.get_num_threads": torch.get_num_threads(),
            "OMP_NUM_THREADS": os.environ["OMP_NUM_THREADS"],
            "MKL_NUM_THREADS": os.environ["MKL_NUM_THREADS"],
            "OPENBLAS_NUM_THREADS": os.environ["OPENBLAS_NUM_THREADS"],
        },
        "attn_implementation": getattr(model.base_model.model.config, "_attn_implementation", None),
        "batch": batch,
        "seq": seq,
        "trainable_params": sum(p.numel() for p in trainable),
        "steps": args.steps,
        "step_ms": ms,
        "median_ms": median_ms,
        "tokens_per_sec": batch * seq / (median_ms / 1000),
        "losses": losses,
        "load_seconds": load_seconds,
        "rss_after_load_bytes": rss_after_load,
        "peak_rss_bytes": peak_rss_bytes(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
