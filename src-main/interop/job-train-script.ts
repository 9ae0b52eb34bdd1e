// The train.py of an exported scale-out job (see scaleout.ts). It is the same for every job: all
// settings come from the job's job.json, so the script can be read, reviewed and diffed once.
//
// It reproduces our training loop (engine/train.ts) step for step with PEFT's adaption prompt on
// transformers: the same examples (Alpaca templates, BOS + prompt + response + EOS, prompt masked,
// truncated), the same epoch orders (data/order.json, computed by our seeded shuffle), the same
// micro-batches and accumulation groups, mean-of-micro-batch-means loss, AdamW with decoupled decay
// on every adapter tensor, no gradient clipping, and the per-step warmup + half-cycle cosine
// learning rate. Under torchrun / accelerate the micro-batches of one optimizer step are spread
// over the processes and the adapter gradients summed across them, so the maths stays that of one
// process with the recipe's effective batch. Kept as a string so that bundling cannot lose it.

export const TRAIN_SCRIPT = String.raw`#!/usr/bin/env python3
"""LLaMA-Adapter training job exported by Adapter Studio: PEFT's adaption prompt on Hugging Face transformers.

    python train.py                                         one process (CPU or one GPU)
    torchrun --standalone --nproc_per_node 8 train.py       8 GPUs on one machine (or ./launch.sh)
    accelerate launch --config_file accelerate_config.yaml train.py

Every setting comes from job.json (written by Adapter Studio); see README.md. The loop is the one Adapter Studio
runs (same data order, batches, loss averaging, AdamW and learning-rate schedule); the micro-batches of one
optimizer step are spread over the processes and the adapter gradients summed across them, so N processes
compute the same steps as one, N times faster. Outputs in --output-dir (default <job>/output):

    adapter_config.json, adapter_model.safetensors   the PEFT adapter (import back with adapter-studio import-job)
    trainer_state.json                               log_history: loss and learning rate per optimizer step
    checkpoint-N/                                    every recipe.checkpointEvery steps (--resume continues)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

JOB_FORMAT = "adapter-studio.peft-job"
JOB_FORMAT_VERSION = 1
IGNORE = -100
PEFT_PARAM = re.compile(r"layers\.(\d+)\.self_attn\.adaption_(prompt|gate)$")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--job-dir", default=str(Path(__file__).resolve().parent), help="folder with job.json (default: this script's)")
    p.add_argument("--base-model", default=None, help="HF model folder or hub id to load instead of job.json's base_model.load_from")
    p.add_argument("--output-dir", default=None, help="where to write the adapter and logs (default: <job>/output)")
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto",
                   help="base model dtype; auto = bfloat16 on a GPU that supports it, else float32. Adapter weights stay float32")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many optimizer steps (a quick trial)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint-N in the output folder")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--check-logits", action="store_true", help="also write check_logits.json (logits of the first example) for import checks")
    return p.parse_args()


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


# ---------------------------------------------------------------------------------------------------------------
# Data: Adapter Studio's tokenisation (engine/data.ts tokenizeExample, makeBatch)


def format_prompt(templates: dict, ex: dict) -> str:
    # First occurrence only, instruction before input: exactly as Adapter Studio fills the template.
    if ex.get("input", "").strip() == "":
        return templates["prompt_no_input"].replace("{instruction}", ex["instruction"], 1)
    return templates["prompt_input"].replace("{instruction}", ex["instruction"], 1).replace("{input}", ex["input"], 1)


def load_tokenizer(base: str):
    """The fast tokenizer's core (tokenizers.Tokenizer): encodes without adding special tokens itself."""
    local = Path(base) / "tokenizer.json"
    if local.is_file():
        from tokenizers import Tokenizer
        return Tokenizer.from_file(str(local))
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(base).backend_tokenizer


def tokenize(tok, templates: dict, ex: dict, bos, eos: int, max_len: int) -> tuple[list[int], int]:
    def encode(text: str) -> list[int]:
        return [] if text == "" else tok.encode(text, add_special_tokens=False).ids
    head = [] if bos is None else [bos]
    prompt = format_prompt(templates, ex)
    prompt_ids = head + encode(prompt)
    full_ids = head + encode(prompt + ex["output"]) + [eos]
    return full_ids[:max_len], min(len(prompt_ids), max_len)


def make_batch(examples: list[tuple[list[int], int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Right-padded ids and labels (prompt and padding ignored) -> ([B, T], [B, T], real tokens)."""
    T = max(2, max(len(ids) for ids, _ in examples))
    ids = torch.full((len(examples), T), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), T), IGNORE, dtype=torch.long)
    for b, (seq, prompt_len) in enumerate(examples):
        ids[b, : len(seq)] = torch.tensor(seq)
        labels[b, prompt_len : len(seq)] = torch.tensor(seq[prompt_len:], dtype=torch.long)
    return ids, labels, sum(len(seq) for seq, _ in examples)


def learning_rate(epoch: float, peak: float, min_lr: float, warmup: float, epochs: float) -> float:
    """engine/optimizer.ts learningRate: linear warmup, then a half-cycle cosine to min_lr."""
    if epoch < warmup:
        return peak * epoch / warmup
    span = max(epochs - warmup, 1e-12)
    return min_lr + (peak - min_lr) * 0.5 * (1 + math.cos(math.pi * (epoch - warmup) / span))


# ---------------------------------------------------------------------------------------------------------------
# Model


def adapter_params(model) -> dict[tuple[int, str], torch.nn.Parameter]:
    """PEFT's adaption_prompt [1, K, hidden] and adaption_gate [1] parameters by (layer, kind)."""
    found = {}
    for name, p in model.named_parameters():
        m = PEFT_PARAM.search(name)
        if m:
            found[(int(m.group(1)), m.group(2))] = p
    return found


def load_adapter_values(params: dict, folder: Path) -> None:
    from safetensors.torch import load_file
    stored = load_file(str(folder / "adapter_model.safetensors"))
    by_key = {}
    for name, t in stored.items():
        m = PEFT_PARAM.search(name)
        if m:
            by_key[(int(m.group(1)), m.group(2))] = t
    if set(by_key) != set(params):
        fail(f"{folder}: adapter tensors {sorted(by_key)} do not match the model's {sorted(params)}")
    with torch.no_grad():
        for key, p in params.items():
            p.copy_(by_key[key].reshape(p.shape).to(p.dtype))


def main() -> None:
    args = parse_args()
    job_dir = Path(args.job_dir).resolve()
    job = json.loads((job_dir / "job.json").read_text())
    if job.get("format") != JOB_FORMAT or job.get("formatVersion") != JOB_FORMAT_VERSION:
        fail(f"{job_dir / 'job.json'}: not a version {JOB_FORMAT_VERSION} Adapter Studio job")
    recipe, peft_cfg, base_cfg = job["recipe"], job["peft"], job["baseModel"]
    out_dir = Path(args.output_dir).resolve() if args.output_dir else job_dir / "output"

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank)
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if world > 1:
        dist.init_process_group("nccl" if use_cuda else "gloo")
    if args.threads:
        torch.set_num_threads(args.threads)
    main_process = rank == 0

    def log(message: str) -> None:
        if main_process:
            print(message, flush=True)

    # --- data
    templates = json.loads((job_dir / "templates.json").read_text())
    examples_raw = [json.loads(line) for line in (job_dir / "data" / "train.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    orders = json.loads((job_dir / "data" / "order.json").read_text())["epochs"]
    base = args.base_model or base_cfg["loadFrom"]
    if base.startswith((".", "/", "~")) and not Path(base).expanduser().exists():
        fail(f"base model folder {base} not found; pass --base-model with the model's folder (or hub id) on this machine")
    tok = load_tokenizer(base)
    bos, eos = base_cfg["bosId"], base_cfg["eosIds"][0]
    examples = [tokenize(tok, templates, ex, bos, eos, recipe["maxSeqLen"]) for ex in examples_raw]
    for check in json.loads((job_dir / "data" / "check_ids.json").read_text())["examples"]:
        got = examples[check["index"]]
        if list(got[0]) != check["ids"] or got[1] != check["promptLength"]:
            fail(f"example {check['index']}: this tokenizer gives different ids than Adapter Studio did "
                 f"(first ids {got[0][:12]} vs {check['ids'][:12]}); use the same tokenizer.json as the base model in the app")

    n, B, A = len(examples), recipe["batchSize"], recipe["accumSteps"]
    micro_per_epoch = math.ceil(n / B)
    steps_per_epoch = math.ceil(micro_per_epoch / A)
    total = math.ceil(steps_per_epoch * recipe["epochs"])
    if recipe.get("maxSteps"):
        total = min(total, recipe["maxSteps"])
    if args.max_steps:
        total = min(total, args.max_steps)
    if total != job["schedule"]["totalSteps"] and not args.max_steps:
        fail(f"job.json says {job['schedule']['totalSteps']} steps but the data gives {total}")
    peak = recipe["lr"] if recipe.get("lr") else recipe["blr"] * B * A / 256

    # --- model
    if args.dtype == "auto":
        dtype = torch.bfloat16 if use_cuda and torch.cuda.is_bf16_supported() else torch.float32
    else:
        dtype = getattr(torch, args.dtype)
    from peft import AdaptionPromptConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    try:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    except TypeError:  # transformers < 4.56 names it torch_dtype
        model = AutoModelForCausalLM.from_pretrained(base, torch_dtype=dtype)
    model.config.use_cache = False
    model.requires_grad_(False)
    model = get_peft_model(model, AdaptionPromptConfig(adapter_len=peft_cfg["adapterLen"], adapter_layers=peft_cfg["adapterLayers"], task_type="CAUSAL_LM"))
    params = adapter_params(model)
    for p in params.values():
        p.data = p.data.float()  # float32 master weights, as the official code keeps its adapter
        p.requires_grad_(True)
    model.to(device)
    load_adapter_values(params, job_dir / "init_adapter")  # the same initial prompts as Adapter Studio's run
    ordered = [params[k] for k in sorted(params)]
    optimizer = torch.optim.AdamW(ordered, lr=peak, betas=tuple(recipe["betas"]), eps=recipe["eps"], weight_decay=recipe["weightDecay"])
    autocast = torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype != torch.float32)

    log_history: list[dict] = []
    step = 0
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.resume:
        checkpoints = sorted((int(m.group(1)), d) for d in out_dir.iterdir() if (m := re.fullmatch(r"checkpoint-(\d+)", d.name)) and (d / "trainer_state.json").exists())
        if not checkpoints:
            fail(f"--resume: no checkpoint-N folder with a trainer_state.json in {out_dir}")
        step, ckpt = checkpoints[-1]
        load_adapter_values(params, ckpt)
        optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location=device, weights_only=True))
        log_history = json.loads((ckpt / "trainer_state.json").read_text())["log_history"]
        log(f"resumed from {ckpt} (step {step})")

    def save(folder: Path, completed: bool) -> None:
        if not main_process:
            return
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(str(tmp))
        readme = tmp / "README.md"
        if readme.exists():
            readme.unlink()  # PEFT's model-card template
        if not completed:
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        state = {
            "global_step": step,
            "max_steps": total,
            "num_train_epochs": recipe["epochs"],
            "log_history": log_history,
            "adapter_studio": {"job": job["jobId"], "world_size": world, "device": str(device), "dtype": str(dtype).replace("torch.", ""),
                               "completed": completed, "elapsed_s": time.time() - started},
        }
        (tmp / "trainer_state.json").write_text(json.dumps(state, indent=2))
        if folder.exists():
            for item in tmp.iterdir():
                item.replace(folder / item.name)
            tmp.rmdir()
        else:
            tmp.replace(folder)

    log(f"{n} examples, {steps_per_epoch} steps per epoch, {total} steps, peak lr {peak:.3g}, {world} process(es) on {device}, {str(dtype).replace('torch.', '')}")
    model.train()
    started = time.time()
    tokens_seen = 0
    while step < total:
        epoch = step // steps_per_epoch
        order = orders[epoch]
        first_micro = (step % steps_per_epoch) * A
        micros = min(A, micro_per_epoch - first_micro)
        lr = learning_rate(epoch + first_micro / micro_per_epoch, peak, recipe["minLr"], recipe["warmupEpochs"], recipe["epochs"])
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        tokens = torch.zeros((), device=device, dtype=torch.float64)
        for m in range(rank, micros, world):  # this process's share of the step's micro-batches
            start = (first_micro + m) * B
            ids, labels, count = make_batch([examples[i] for i in order[start : start + B]], eos)
            with autocast:
                loss = model(input_ids=ids.to(device), labels=labels.to(device)).loss
            (loss / micros).backward()
            loss_sum += loss.detach().double()
            tokens += count
        if world > 1:
            for p in ordered:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                dist.all_reduce(p.grad)
            dist.all_reduce(loss_sum)
            dist.all_reduce(tokens)
        step_loss = float(loss_sum) / micros
        if not math.isfinite(step_loss):
            fail(f"training diverged: the loss is {step_loss} at step {step + 1}; lower the learning rate or check the data")
        optimizer.step()
        step += 1
        tokens_seen += int(tokens)
        elapsed = time.time() - started
        log_history.append({"step": step, "epoch": step / steps_per_epoch, "loss": step_loss, "learning_rate": lr,
                            "tokens_per_sec": tokens_seen / max(elapsed, 1e-9), "elapsed_s": elapsed})
        log(f"step {step}/{total}  loss {step_loss:.4f}  lr {lr:.3g}  {tokens_seen / max(elapsed, 1e-9):.0f} tok/s")
        every = recipe.get("checkpointEvery") or 0
        if every > 0 and step % every == 0 and step < total:
            save(out_dir / f"checkpoint-{step}", completed=False)
            if main_process:  # keep the two newest
                old = sorted((int(d.name.split("-")[1]), d) for d in out_dir.iterdir() if re.fullmatch(r"checkpoint-\d+", d.name))
                for _, d in old[:-2]:
                    shutil.rmtree(d, ignore_errors=True)

    save(out_dir, completed=True)
    if args.check_logits and main_process:
        model.eval()
        ids = torch.tensor([examples[0][0]], device=device)
        with torch.no_grad(), autocast:
            logits = model(input_ids=ids).logits.float()
        (out_dir / "check_logits.json").write_text(json.dumps({"input_ids": ids.tolist(), "logits": logits.tolist()}))
    log(f"done: {step} steps in {time.time() - started:.1f} s; adapter in {out_dir}")
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
`;
