"""Writes official-format LLaMA-Adapter v1 checkpoints and their reference logits for test/interop-official.test.ts.

For each tiny HF model of test/fixtures/parity/<case>/model it writes test/fixtures/interop/official/<case>/:

  adapter.pth          torch.save of what alpaca_finetuning_v1/extract_adapter_from_checkpoint.py saves: a dict of
                       layers.{i}.attention.gate [1, nHeads, 1, 1] for EVERY layer i (zero below the adapted ones)
                       and adapter_query.weight [L * K, dim], float32
  adapter_fp16.pth     the same values stored as float16 (what a .half() model saves)
  adapter_bf16.pth     ... as bfloat16
  adapter_strided.pth  adapter_query.weight saved as a non-contiguous (transposed) view
  adapter_deflated.pth adapter.pth re-zipped with deflate compression
  checkpoint-4.pth     a full training checkpoint as misc.save_model writes it: {'model': state dict (adapter tensors
                       plus the frozen Meta-named base weights), 'optimizer', 'epoch', 'scaler', 'args': Namespace}
  fixture.json         {adapter_len, adapter_layers, input_ids, logits: {tanh, raw, fp16_tanh, bf16_tanh}, checks}

The reference logits come from tools/reference_llama_adapter.py (HF layout). Before writing, the script proves
that reference equal to the official training forward on the Meta-layout weights (tools/official_llama_reference.py:
complex RoPE, concatenated scores), for both gate forms. That is the claim the importer rests on: prompts and
per-head gates carry over unchanged between the two layouts.

Also writes test/fixtures/interop/official/evil.pth: a torch-format zip whose pickle calls os.system (never
loaded here; the TS reader must refuse it without running anything).

Rerun (a few seconds):  python3 tools/make_official_adapter_fixture.py
Needs torch, transformers, safetensors.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import zipfile
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import LlamaConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from official_llama_reference import hf_to_meta, meta_forward  # noqa: E402
from reference_llama_adapter import AdapterWeights, LlamaShape, forward  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
PARITY = REPO_ROOT / "test" / "fixtures" / "parity"
OUT_ROOT = REPO_ROOT / "test" / "fixtures" / "interop" / "official"
CASES = {"mha": 5, "gqa": 3}  # case -> adapter_len K; L = n_layers - 1 (all but the first, as the paper's 30 of 32)
SEQ_LEN = 7
TOL = 2e-5


def f32_list(t: torch.Tensor):
    return t.detach().to(torch.float32).tolist()


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def build(case: str, K: int) -> dict:
    model_dir = PARITY / case / "model"
    config = LlamaConfig.from_pretrained(model_dir)
    shape = LlamaShape.from_hf_config(config)
    weights = load_file(model_dir / "model.safetensors")
    if shape.tie_word_embeddings:
        weights["lm_head.weight"] = weights["model.embed_tokens.weight"]
    n, H = shape.num_layers, shape.num_heads
    L = n - 1
    g = torch.Generator().manual_seed(1234 + K)
    adapted = list(range(n - L, n))
    query = torch.randn(L * K, shape.hidden_size, generator=g)  # [L * K, dim]
    gates = {i: torch.zeros(1, H, 1, 1) for i in range(n)}
    for i in adapted:
        gates[i] = 0.7 * torch.randn(1, H, 1, 1, generator=g)
    input_ids = torch.randint(0, shape.vocab_size, (2, SEQ_LEN), generator=g)

    def hf_logits(q: torch.Tensor, gs: dict[int, torch.Tensor], gate_fn: str) -> torch.Tensor:
        a = AdapterWeights(
            prompts={layer: q[j * K : (j + 1) * K].float() for j, layer in enumerate(adapted)},
            gates={layer: gs[layer].float().reshape(H) for layer in adapted},
            gate_fn=gate_fn,
        )
        with torch.no_grad():
            return forward(weights, shape, input_ids, a)

    meta = hf_to_meta(weights, n, H, shape.num_kv_heads, shape.tie_word_embeddings)
    checks = {}
    logits = {}
    for gate_fn, name in (("tanh", "tanh"), ("identity", "raw")):
        logits[name] = hf_logits(query, gates, gate_fn)
        with torch.no_grad():
            official = meta_forward(
                meta,
                n_layers=n,
                n_heads=H,
                n_kv_heads=shape.num_kv_heads,
                norm_eps=shape.rms_norm_eps,
                rope_theta=shape.rope_theta,
                rope_llama3=shape.rope_llama3,
                tokens=input_ids,
                adapter_query=query,
                gates=gates,
                adapter_len=K,
                gate_fn="tanh" if gate_fn == "tanh" else "raw",
            )
        checks[f"official_meta_vs_hf_reference_{name}"] = max_abs(official, logits[name])
        if checks[f"official_meta_vs_hf_reference_{name}"] > TOL:
            raise SystemExit(f"{case}: the official forward on Meta weights differs from the HF reference ({name})")
    with torch.no_grad():
        base = forward(weights, shape, input_ids, None)
    checks["tanh_vs_base"] = max_abs(logits["tanh"], base)
    if checks["tanh_vs_base"] < 1e-2:
        raise SystemExit(f"{case}: the adapter barely changes the logits; the test would prove nothing")

    out = OUT_ROOT / case
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    # Insertion order as extract_adapter_from_checkpoint.py: the gates of every layer, then the prompts.
    state = {f"layers.{i}.attention.gate": gates[i] for i in range(n)}
    state["adapter_query.weight"] = query
    torch.save(state, out / "adapter.pth")
    for dtype, name in ((torch.float16, "fp16"), (torch.bfloat16, "bf16")):
        narrow = {k: v.to(dtype) for k, v in state.items()}
        torch.save(narrow, out / f"adapter_{name}.pth")
        logits[f"{name}_tanh"] = hf_logits(narrow["adapter_query.weight"], {i: narrow[f"layers.{i}.attention.gate"] for i in range(n)}, "tanh")

    # The same tensors in the two less common shapes a .pth can take: a non-contiguous view (adapter_query as the
    # transpose of a [dim, L * K] storage, strides (1, L * K)), and an archive re-zipped with deflate compression.
    strided = dict(state)
    strided["adapter_query.weight"] = query.t().contiguous().t()
    assert not strided["adapter_query.weight"].is_contiguous()
    torch.save(strided, out / "adapter_strided.pth")
    with zipfile.ZipFile(out / "adapter.pth") as src, zipfile.ZipFile(out / "adapter_deflated.pth", "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    assert torch.equal(torch.load(out / "adapter_deflated.pth", weights_only=True)["adapter_query.weight"], query)

    # A training checkpoint: the whole model state dict (base weights in Meta names, frozen) plus optimizer state.
    model_state = dict(meta)
    model_state.update(state)
    args = argparse.Namespace(adapter_len=K, adapter_layer=L, max_seq_len=512, blr=9e-3, model="Llama7B_adapter")
    torch.save(
        {
            "model": model_state,
            "optimizer": {"state": {}, "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.95), "weight_decay": 0.02, "params": [0, 1]}]},
            "epoch": 4,
            "scaler": {"scale": 65536.0, "growth_factor": 2.0, "_growth_tracker": 10},
            "args": args,
        },
        out / "checkpoint-4.pth",
    )
    # The files load in PyTorch as the official code loads them.
    reloaded = torch.load(out / "adapter.pth", map_location="cpu", weights_only=True)
    assert torch.equal(reloaded["adapter_query.weight"], query)

    fixture = {
        "case": case,
        "adapter_len": K,
        "adapter_layers": adapted,
        "input_ids": input_ids.tolist(),
        "logits": {k: f32_list(v) for k, v in logits.items()},
        "checks": checks,
        "generated_by": {"script": "tools/make_official_adapter_fixture.py", "torch": torch.__version__},
    }
    (out / "fixture.json").write_text(json.dumps(fixture, separators=(",", ":")) + "\n")
    return checks


def write_evil() -> None:
    """A pickle that would run `os.system("echo pwned")` if Python loaded it with weights_only=False."""
    pkl = b"\x80\x02cos\nsystem\nX\x0a\x00\x00\x00echo pwnedq\x00\x85R."
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("evil/data.pkl", pkl)
        z.writestr("evil/version", "3\n")
    (OUT_ROOT / "evil.pth").write_bytes(buf.getvalue())


def main() -> None:
    torch.set_num_threads(2)
    OUT_ROOT.mkdir(parents=True, exist_ok=True)
    for case, K in CASES.items():
        checks = build(case, K)
        print(case, {k: f"{v:.2e}" for k, v in checks.items()})
    write_evil()


if __name__ == "__main__":
    main()
