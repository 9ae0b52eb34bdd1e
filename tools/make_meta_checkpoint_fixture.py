"""Writes tiny checkpoints in Meta's original LLaMA layout for test/interop-meta.test.ts.

From the HF models of test/fixtures/parity/<case>/model it writes test/fixtures/interop/meta/<name>/:

  params.json                 as Meta ships it (dim, n_layers, n_heads, [n_kv_heads], norm_eps, vocab_size -1,
                              multiple_of, [ffn_dim_multiplier], [rope_theta], [use_scaled_rope])
  consolidated.NN.pth         torch.save of each model-parallel rank's state dict (Meta names, interleaved-RoPE
                              row order in wq / wk, matrices split as fairscale splits them), in the case's dtype
  fixture.json                {input_ids, logits}: the HF model's logits with its weights rounded to that dtype

The weights are the HF model's with the inverse of transformers' q/k permutation applied
(tools/official_llama_reference.py). Before writing, the script checks that Meta's own forward (complex RoPE) on the
merged shards gives the HF logits, so the files are a faithful Meta-layout copy.

Cases:  gqa-mp1-f32  (one rank, float32; GQA)       mha-mp2-f16  (two ranks, float16)
        llama3-mp2-bf16  (two ranks, bfloat16, rope_theta 500000 and llama3 RoPE scaling via use_scaled_rope)

Rerun (a few seconds):  python3 tools/make_meta_checkpoint_fixture.py
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import LlamaConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from official_llama_reference import hf_to_meta, meta_forward, shard  # noqa: E402
from reference_llama_adapter import LlamaShape, forward  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
PARITY = REPO_ROOT / "test" / "fixtures" / "parity"
OUT_ROOT = REPO_ROOT / "test" / "fixtures" / "interop" / "meta"
CASES = [
    # name, parity case, model-parallel ranks, dtype
    ("gqa-mp1-f32", "gqa", 1, torch.float32),
    ("mha-mp2-f16", "mha", 2, torch.float16),
    ("llama3-mp2-bf16", "llama3rope", 2, torch.bfloat16),
]
TOL = 2e-5


def params_json(shape: LlamaShape, config: LlamaConfig) -> dict:
    p = {
        "dim": shape.hidden_size,
        "multiple_of": 16,
        "n_heads": shape.num_heads,
        "n_layers": shape.num_layers,
        "norm_eps": shape.rms_norm_eps,
        "vocab_size": -1,
    }
    if shape.num_kv_heads != shape.num_heads:
        p["n_kv_heads"] = shape.num_kv_heads
    if shape.rope_theta != 10000.0:
        p["rope_theta"] = shape.rope_theta
    if shape.rope_llama3 is not None:
        p["use_scaled_rope"] = True
    return p


def build(name: str, case: str, ranks: int, dtype: torch.dtype) -> dict:
    model_dir = PARITY / case / "model"
    config = LlamaConfig.from_pretrained(model_dir)
    shape = LlamaShape.from_hf_config(config)
    hf = load_file(model_dir / "model.safetensors")
    # The values the files will hold, back in float32: what both sides compute with.
    hf = {k: v.to(dtype).to(torch.float32) for k, v in hf.items()}
    if shape.tie_word_embeddings:
        raise SystemExit(f"{case}: Meta's layout has no tied embeddings")
    meta = hf_to_meta(hf, shape.num_layers, shape.num_heads, shape.num_kv_heads, False)

    g = torch.Generator().manual_seed(7)
    input_ids = torch.randint(0, shape.vocab_size, (2, 9), generator=g)
    with torch.no_grad():
        logits = forward(hf, shape, input_ids, None)
        official = meta_forward(
            meta,
            n_layers=shape.num_layers,
            n_heads=shape.num_heads,
            n_kv_heads=shape.num_kv_heads,
            norm_eps=shape.rms_norm_eps,
            rope_theta=shape.rope_theta,
            rope_llama3=shape.rope_llama3,
            tokens=input_ids,
        )
    diff = float((official - logits).abs().max())
    if diff > TOL:
        raise SystemExit(f"{name}: Meta's forward on the permuted weights differs from HF by {diff}")

    out = OUT_ROOT / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / "params.json").write_text(json.dumps(params_json(shape, config)))
    for rank, part in enumerate(shard(meta, ranks)):
        torch.save({k: v.to(dtype) for k, v in part.items()}, out / f"consolidated.{rank:02d}.pth")
    fixture = {
        "case": case,
        "model_parallel": ranks,
        "dtype": str(dtype).replace("torch.", ""),
        "rope_scaling": shape.rope_llama3,
        "max_position_embeddings": config.max_position_embeddings,
        "input_ids": input_ids.tolist(),
        "logits": logits.tolist(),
        "checks": {"meta_forward_vs_hf": diff},
        "generated_by": {"script": "tools/make_meta_checkpoint_fixture.py", "torch": torch.__version__},
    }
    (out / "fixture.json").write_text(json.dumps(fixture, separators=(",", ":")) + "\n")
    return fixture["checks"]


def main() -> None:
    torch.set_num_threads(2)
    for name, case, ranks, dtype in CASES:
        print(name, build(name, case, ranks, dtype))


if __name__ == "__main__":
    main()
