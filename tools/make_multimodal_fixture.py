"""Reference numbers for the multi-modal LLaMA-Adapter: logits, loss and gradients of the image projection, the
prompts and the gates, computed in PyTorch by tools/reference_llama_adapter.py on a parity model.

The multi-modal form of LLaMA-Adapter v1 (Zhang et al. 2023, arXiv:2303.16199, section 4.3 "Multi-modal
Reasoning"): a frozen image encoder gives a global feature I [F] per image; a trainable projection maps it to the
model width, and it is added to every prompt vector of every adapted layer, P_l + Repeat_K(proj(I)). Our
projection is fc1 [F -> H] -> exact GELU -> fc2 [H -> hidden], each with a bias (see src-main/engine/image-prompt.ts);
an example without an image gets no image term.

    python tools/make_multimodal_fixture.py    # writes test/fixtures/multimodal/fixture.json

Not run by the tests: they read the committed fixture.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_llama_adapter import AdapterWeights, LlamaShape, causal_lm_loss, forward  # noqa: E402

MODEL_CASE = "gqa"  # 6 query heads over 2 KV heads, so the image term also crosses GQA's repetition
FEATURE_DIM = 12
HIDDEN = 7
ADAPTER_LEN = 3
ADAPTER_LAYERS = [1, 2]


def f32_list(t: torch.Tensor):
    return t.detach().to(torch.float32).tolist()


def main() -> None:
    from transformers import LlamaConfig

    model_dir = ROOT / "test" / "fixtures" / "parity" / MODEL_CASE / "model"
    config = LlamaConfig.from_pretrained(model_dir)
    shape = LlamaShape.from_hf_config(config)
    weights = load_file(str(model_dir / "model.safetensors"))
    g = torch.Generator().manual_seed(20260303)
    dim = shape.hidden_size

    input_ids = torch.randint(0, shape.vocab_size, (3, 9), generator=g)
    labels = input_ids.clone()
    labels[:, :3] = -100
    # Example 1 has no image: its feature row is ignored (present = 0), so it must get no image term at all.
    features = torch.randn(3, FEATURE_DIM, generator=g)
    present = torch.tensor([1.0, 0.0, 1.0])

    fc1_w = (0.4 * torch.randn(FEATURE_DIM, HIDDEN, generator=g)).requires_grad_()  # [F, H], the engine's [in, out]
    fc1_b = (0.1 * torch.randn(HIDDEN, generator=g)).requires_grad_()
    fc2_w = (0.4 * torch.randn(HIDDEN, dim, generator=g)).requires_grad_()  # [H, hidden]
    fc2_b = (0.1 * torch.randn(dim, generator=g)).requires_grad_()
    prompts = {i: torch.randn(ADAPTER_LEN, dim, generator=g).requires_grad_() for i in ADAPTER_LAYERS}
    gates = {i: (0.5 * torch.randn(shape.num_heads, generator=g)).requires_grad_() for i in ADAPTER_LAYERS}

    projected = F.gelu(features @ fc1_w + fc1_b) @ fc2_w + fc2_b  # [B, hidden]
    bias = (projected * present[:, None])[:, None, :]  # [B, 1, hidden]: Repeat_K by broadcasting
    adapter = AdapterWeights(prompts=prompts, gates=gates, gate_fn="tanh", prompt_bias=bias)
    logits = forward(weights, shape, input_ids, adapter)
    loss = causal_lm_loss(logits, labels)
    loss.backward()

    # The same model without an image term for example 1 must equal a text-only forward of it.
    text_only = AdapterWeights(prompts=prompts, gates=gates, gate_fn="tanh")
    with torch.no_grad():
        text_logits = forward(weights, shape, input_ids[1:2], text_only)
    assert torch.allclose(text_logits[0], logits[1].detach(), atol=1e-5), "example without an image differs from text-only"

    out = {
        "format_version": 1,
        "generated_by": {"script": "tools/make_multimodal_fixture.py", "torch": torch.__version__},
        "model_case": MODEL_CASE,
        "adapter_len": ADAPTER_LEN,
        "adapter_layers": ADAPTER_LAYERS,
        "feature_dim": FEATURE_DIM,
        "hidden": HIDDEN,
        "input_ids": input_ids.tolist(),
        "labels": labels.tolist(),
        "features": f32_list(features),
        "present": f32_list(present),
        "projection": {"fc1.weight": f32_list(fc1_w), "fc1.bias": f32_list(fc1_b), "fc2.weight": f32_list(fc2_w), "fc2.bias": f32_list(fc2_b)},
        "prompts": {str(i): f32_list(p) for i, p in prompts.items()},
        "gates": {str(i): f32_list(p) for i, p in gates.items()},
        "logits": f32_list(logits),
        "loss": float(loss),
        "grads": {
            "projection": {"fc1.weight": f32_list(fc1_w.grad), "fc1.bias": f32_list(fc1_b.grad), "fc2.weight": f32_list(fc2_w.grad), "fc2.bias": f32_list(fc2_b.grad)},
            "prompts": {str(i): f32_list(p.grad) for i, p in prompts.items()},
            "gates": {str(i): f32_list(p.grad) for i, p in gates.items()},
        },
    }
    target = ROOT / "test" / "fixtures" / "multimodal" / "fixture.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(out) + "\n")
    print(f"wrote {target.relative_to(ROOT)} (loss {float(loss):.6f})")


if __name__ == "__main__":
    main()
