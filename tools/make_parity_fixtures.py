"""Writes the PyTorch reference fixtures that the TypeScript engine is checked against.

For each tiny LLaMA config in CASES it writes test/fixtures/parity/<case>/:

  model/             a Hugging Face folder (config.json + model.safetensors) from LlamaForCausalLM.save_pretrained,
                     float32, random weights from a fixed seed (std 0.1; norm weights 1 + 0.1 * randn).
  peft_adapter/      PEFT's own save of an AdaptionPromptConfig adapter (adapter_config.json +
                     adapter_model.safetensors), for testing the PEFT importer.
  fixture.json       inputs, and the outputs of three models on them:
                       base       the plain model (transformers),
                       peft       PEFT's adaption prompt (one raw gate per layer, no tanh),
                       tanh       LLaMA-Adapter v1 as in the official code (one gate per head, scaled by tanh),
                                  computed by the hand-written forward in tools/reference_llama_adapter.py,
                     with logits, loss and the gradients of the loss w.r.t. the prompts and gates.
                     The exact layout is in the docstring of `build_case`.

Before writing anything, each case proves its reference: the hand forward equals transformers' logits with no
adapter, equals PEFT's logits and gradients with PEFT's gate convention, and PEFT with zero gates equals the base
model. The measured differences are stored under "checks"; the script stops if one exceeds its tolerance.

Rerun (about half a minute on 2 cores; overwrites only test/fixtures/parity/<case>/ for the cases below, or for
the cases named):

    python3 tools/make_parity_fixtures.py [case ...]

Needs torch, transformers 5.x, peft, safetensors, numpy. Not run by the tests; the tests read its output.
Floats are written as the shortest decimal that reads back as the same float32, so nothing is lost.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import peft
import safetensors
import torch
import transformers
from peft import AdaptionPromptConfig, PeftModel, get_peft_model
from safetensors import safe_open
from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM, GemmaConfig, GemmaForCausalLM, Gemma2Config, Gemma2ForCausalLM, Gemma3TextConfig, Gemma3ForCausalLM, Phi3Config, Phi3ForCausalLM, GPT2Config, GPT2LMHeadModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_llama_adapter import (  # noqa: E402
    AdapterWeights,
    LlamaShape,
    causal_lm_loss,
    forward,
    rope_inv_freq,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_ROOT = REPO_ROOT / "test" / "fixtures" / "parity"
FORMAT_VERSION = 1

ADAPTER_LEN = 4  # K prompt vectors per adapted layer
ADAPTER_LAYERS = 2  # adapt the top L layers, as PEFT and the paper do
# Non-zero PEFT gates (top layers, bottom to top) so the prompt path shows in logits and gradients.
PEFT_GATES = [0.3, -0.2]

# Tolerances for the checks that prove the reference (float32, tiny models).
TOL_HAND_VS_HF = 1e-5
TOL_HAND_VS_PEFT = 1e-5
TOL_GRAD_VS_PEFT = 1e-5


@dataclass(frozen=True)
class Case:
    name: str
    seed: int
    seq_len: int  # T; both rows are all real tokens (no padding)
    prompt_lens: tuple[int, int]  # label positions set to -100 at the start of each row
    config: dict = field(default_factory=dict)  # the family's config keyword arguments
    family: str = "llama"  # llama | mistral (a sliding window) | qwen2 (Qwen2 / Qwen2.5: biased q/k/v projections) | qwen3 | gemma | gemma2 | gemma3_text | phi3 | gpt2


# The model classes of each family; PEFT's adaption prompt supports llama (and mistral), not qwen2.
FAMILIES = {
    "llama": (LlamaConfig, LlamaForCausalLM),
    "mistral": (MistralConfig, MistralForCausalLM),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM),
    "qwen3": (Qwen3Config, Qwen3ForCausalLM),
    "gemma": (GemmaConfig, GemmaForCausalLM),
    "gemma2": (Gemma2Config, Gemma2ForCausalLM),
    "gemma3_text": (Gemma3TextConfig, Gemma3ForCausalLM),
    "phi3": (Phi3Config, Phi3ForCausalLM),
    "gpt2": (GPT2Config, GPT2LMHeadModel),
}
PEFT_FAMILIES = {"llama", "mistral"}


GQA = dict(
    vocab_size=80,
    hidden_size=48,
    intermediate_size=96,
    num_hidden_layers=3,
    num_attention_heads=6,
    num_key_value_heads=2,
    rope_theta=500000.0,
    rms_norm_eps=1e-5,
)

CASES = [
    # Plain multi-head attention.
    Case(
        "mha",
        seed=1001,
        seq_len=9,
        prompt_lens=(3, 4),
        config=dict(
            vocab_size=96,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=4,
            rope_theta=10000.0,
            rms_norm_eps=1e-6,
        ),
    ),
    # Grouped-query attention: 3 query heads per kv head.
    Case("gqa", seed=1002, seq_len=11, prompt_lens=(4, 2), config=GQA),
    # Odd sizes (head_dim 12), a single kv head, a non-integer theta, tied embeddings; every layer is adapted.
    Case(
        "odd",
        seed=1003,
        seq_len=7,
        prompt_lens=(2, 3),
        config=dict(
            vocab_size=77,
            hidden_size=36,
            intermediate_size=52,
            num_hidden_layers=2,
            num_attention_heads=3,
            num_key_value_heads=1,
            rope_theta=1234.5,
            rms_norm_eps=1e-6,
            tie_word_embeddings=True,
        ),
    ),
    # Llama 3.1 RoPE scaling with a tiny original context (16) so that the 24 positions run past it.
    # With head_dim 8 and theta 5e5 one frequency falls in the smoothed band and three are divided by `factor`.
    Case(
        "llama3rope",
        seed=1004,
        seq_len=24,
        prompt_lens=(5, 8),
        config=dict(
            GQA,
            max_position_embeddings=128,
            rope_scaling=dict(
                rope_type="llama3",
                factor=8.0,
                low_freq_factor=1.0,
                high_freq_factor=4.0,
                original_max_position_embeddings=16,
            ),
        ),
    ),
    # Llama 3.1 RoPE with head_dim 16 and theta 1e4, so all three bands occur: wavelength 6.3 (< 8, kept),
    # 19.9 (between 8 and 32, smoothed) and 62.8 and up (> 32, divided by `factor`).
    Case(
        "llama3bands",
        seed=1005,
        seq_len=20,
        prompt_lens=(6, 3),
        config=dict(
            vocab_size=64,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            rope_theta=10000.0,
            rms_norm_eps=1e-5,
            max_position_embeddings=128,
            rope_scaling=dict(
                rope_type="llama3",
                factor=8.0,
                low_freq_factor=1.0,
                high_freq_factor=4.0,
                original_max_position_embeddings=32,
            ),
        ),
    ),
    # Mistral: LLaMA's layout with a sliding window; here the window (16) is longer than the sequence (13), the only
    # case the engine runs (it caps a Mistral's context at its window). (PEFT's adaption prompt breaks on a head_dim
    # other than hidden / heads, so this one keeps it.)
    Case(
        "mistral",
        seed=1008,
        seq_len=13,
        prompt_lens=(4, 6),
        family="mistral",
        config=dict(
            vocab_size=70,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            rope_theta=1000000.0,
            rms_norm_eps=1e-5,
            max_position_embeddings=64,
            sliding_window=16,
        ),
    ),
    # LLaMA with attention_bias: biases on q, k, v and o (the prompt's keys and values take k/v's bias too).
    Case("llamabias", seed=1006, seq_len=10, prompt_lens=(3, 5), config=dict(GQA, attention_bias=True)),
    # Qwen2 / Qwen2.5: biased q/k/v (o without), GQA, tied embeddings as the small Qwen2.5 models have.
    Case(
        "qwen2",
        seed=1007,
        seq_len=12,
        prompt_lens=(4, 3),
        family="qwen2",
        config=dict(
            vocab_size=90,
            hidden_size=48,
            intermediate_size=80,
            num_hidden_layers=3,
            num_attention_heads=6,
            num_key_value_heads=2,
            rope_theta=1000000.0,
            rms_norm_eps=1e-6,
            max_position_embeddings=256,
            tie_word_embeddings=True,
            use_sliding_window=False,
        ),
    ),
    # Qwen3: per-head RMSNorm of q and k before RoPE (non-trivial weights), a head_dim (16) other than
    # hidden / heads (12), GQA, an untied head, no biases (as the released models).
    Case(
        "qwen3",
        seed=1009,
        seq_len=12,
        prompt_lens=(3, 5),
        family="qwen3",
        config=dict(
            vocab_size=88,
            hidden_size=48,
            intermediate_size=80,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            rope_theta=1000000.0,
            rms_norm_eps=1e-6,
            max_position_embeddings=256,
            tie_word_embeddings=False,
            attention_bias=False,
            use_sliding_window=False,
        ),
    ),
    # Gemma 1: embeddings times sqrt(hidden), RMSNorm by (1 + w), GeGLU with the tanh GELU, a head_dim (16) other
    # than hidden / heads, tied head.
    Case(
        "gemma",
        seed=1010,
        seq_len=11,
        prompt_lens=(3, 4),
        family="gemma",
        config=dict(
            vocab_size=84,
            hidden_size=48,
            intermediate_size=96,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            hidden_act="gelu_pytorch_tanh",
            rope_theta=10000.0,
            rms_norm_eps=1e-6,
            max_position_embeddings=256,
            tie_word_embeddings=True,
            bos_token_id=2,
            eos_token_id=1,
            pad_token_id=0,
        ),
    ),
    # Gemma 2: norms after attention and the MLP too, soft caps small enough to bite (attention 5, final 3: random
    # weights give logits well past them), query_pre_attn_scalar other than head_dim, alternating sliding-window
    # layers with a window (16) longer than the sequence (mistral_window and gemma3 have windows that bite).
    Case(
        "gemma2",
        seed=1011,
        seq_len=12,
        prompt_lens=(3, 5),
        family="gemma2",
        config=dict(
            vocab_size=84,
            hidden_size=48,
            intermediate_size=96,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            hidden_activation="gelu_pytorch_tanh",
            query_pre_attn_scalar=24,
            attn_logit_softcapping=5.0,
            final_logit_softcapping=3.0,
            sliding_window=16,
            rope_theta=10000.0,
            rms_norm_eps=1e-6,
            max_position_embeddings=256,
            tie_word_embeddings=True,
            bos_token_id=2,
            eos_token_id=1,
            pad_token_id=0,
        ),
    ),
    # Phi-3: LLaMA's block with q/k/v as one qkv_proj and gate/up as one gate_up_proj, GQA, a sliding window (32)
    # longer than the sequence.
    Case(
        "phi3",
        seed=1012,
        seq_len=11,
        prompt_lens=(4, 3),
        family="phi3",
        config=dict(
            vocab_size=90,
            hidden_size=48,
            intermediate_size=80,
            num_hidden_layers=3,
            num_attention_heads=6,
            num_key_value_heads=2,
            rope_theta=10000.0,
            rms_norm_eps=1e-5,
            max_position_embeddings=128,
            original_max_position_embeddings=128,
            sliding_window=32,
            tie_word_embeddings=False,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attention_dropout=0.0,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=2,
        ),
    ),
]


# Sliding windows shorter than the sequence, where they mask: Mistral's in every layer (PEFT's adaption prompt too), Qwen2's
# from max_window_layers on, and
# Gemma 3's in its sliding layers, which also rotate by a base of their own while the full layers' RoPE is linearly
# scaled; q/k norms by 1 + w; no soft caps (Gemma 3's default), so the fused attention runs where no window bites.
CASES += [
    Case(
        "mistral_window",
        seed=1013,
        seq_len=13,
        prompt_lens=(3, 4),
        family="mistral",
        config=dict(GQA, sliding_window=5, max_position_embeddings=64, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2),
    ),
    # Qwen2 with use_sliding_window: full attention in layer 0 (max_window_layers=1), a 4-token window after.
    Case(
        "qwen2_window",
        seed=1015,
        seq_len=12,
        prompt_lens=(4, 3),
        family="qwen2",
        config=dict(
            vocab_size=90,
            hidden_size=48,
            intermediate_size=80,
            num_hidden_layers=3,
            num_attention_heads=6,
            num_key_value_heads=2,
            rope_theta=1000000.0,
            rms_norm_eps=1e-6,
            max_position_embeddings=256,
            tie_word_embeddings=False,
            use_sliding_window=True,
            sliding_window=4,
            max_window_layers=1,
        ),
    ),
    Case(
        "gemma3",
        seed=1014,
        seq_len=12,
        prompt_lens=(4, 2),
        family="gemma3_text",
        config=dict(
            vocab_size=86,
            hidden_size=48,
            intermediate_size=96,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            hidden_activation="gelu_pytorch_tanh",
            query_pre_attn_scalar=24,
            sliding_window=4,
            layer_types=["sliding_attention", "sliding_attention", "full_attention", "sliding_attention"],
            rope_parameters={
                "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
            },
            rms_norm_eps=1e-6,
            max_position_embeddings=256,
            tie_word_embeddings=True,
            bos_token_id=2,
            eos_token_id=1,
            pad_token_id=0,
        ),
    ),
]


# Phi-3 with LongRoPE (as the 128k models): an original context of 8 positions, so the 12-token rows use the long
# factors, and cos/sin scaled by the attention factor sqrt(1 + ln(64 / 8) / ln 8).
CASES += [
    Case(
        "phi3_longrope",
        seed=1017,
        seq_len=12,
        prompt_lens=(4, 3),
        family="phi3",
        config=dict(
            vocab_size=90, hidden_size=48, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=64, original_max_position_embeddings=8, rms_norm_eps=1e-5, tie_word_embeddings=False,
            rope_scaling={"type": "longrope", "short_factor": [1.0, 1.1, 1.3, 1.6, 2.0, 2.5], "long_factor": [1.5, 2.0, 2.8, 3.9, 5.3, 7.0]},
            resid_pdrop=0.0, embd_pdrop=0.0, attention_dropout=0.0, sliding_window=None, pad_token_id=0, bos_token_id=1, eos_token_id=2,
        ),
    ),
]


# Phi-3 with partial_rotary_factor 0.5 (as Phi-4-mini's 0.75): RoPE on the first 6 of each head's 12 features.
CASES += [
    Case(
        "phi3_partial",
        seed=1018,
        seq_len=12,
        prompt_lens=(3, 4),
        family="phi3",
        config=dict(
            vocab_size=90, hidden_size=48, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=64, partial_rotary_factor=0.5, rms_norm_eps=1e-5, tie_word_embeddings=True,
            resid_pdrop=0.0, embd_pdrop=0.0, attention_dropout=0.0, sliding_window=None, pad_token_id=0, bos_token_id=1, eos_token_id=2,
        ),
    ),
]


# GPT-2: LayerNorm with biases, learned positions, Conv1D weights ([in, out]) with biases, c_attn fused q/k/v, an
# ungated gelu_new MLP, a tied head; no dropout (the engine trains without, and refuses a config that sets it).
CASES += [
    Case(
        "gpt2",
        seed=1016,
        seq_len=12,
        prompt_lens=(3, 5),
        family="gpt2",
        config=dict(vocab_size=90, n_embd=48, n_layer=3, n_head=4, n_positions=64, n_inner=None, activation_function="gelu_new",
                    resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=1e-5, bos_token_id=1, eos_token_id=2),
    ),
]


# ---------------------------------------------------------------------------------------------------------------
# Helpers


def gpt2_as_llama_names(weights: dict[str, torch.Tensor], shape) -> dict[str, torch.Tensor]:
    """GPT-2's state dict under the names the hand forward reads: Conv1D weights ([in, out]) transposed to nn.Linear's
    [out, in], c_attn split into q/k/v by columns, LayerNorm weights and biases, positions as embed_positions."""
    d = shape.hidden_size
    out = {"model.embed_tokens.weight": weights["transformer.wte.weight"], "model.embed_positions.weight": weights["transformer.wpe.weight"],
           "model.norm.weight": weights["transformer.ln_f.weight"], "model.norm.bias": weights["transformer.ln_f.bias"]}
    for i in range(shape.num_layers):
        g, p = f"transformer.h.{i}", f"model.layers.{i}"
        qw, kw, vw = weights[f"{g}.attn.c_attn.weight"].split([d, d, d], dim=1)
        qb, kb, vb = weights[f"{g}.attn.c_attn.bias"].split([d, d, d])
        out.update({
            f"{p}.input_layernorm.weight": weights[f"{g}.ln_1.weight"], f"{p}.input_layernorm.bias": weights[f"{g}.ln_1.bias"],
            f"{p}.self_attn.q_proj.weight": qw.T, f"{p}.self_attn.k_proj.weight": kw.T, f"{p}.self_attn.v_proj.weight": vw.T,
            f"{p}.self_attn.q_proj.bias": qb, f"{p}.self_attn.k_proj.bias": kb, f"{p}.self_attn.v_proj.bias": vb,
            f"{p}.self_attn.o_proj.weight": weights[f"{g}.attn.c_proj.weight"].T, f"{p}.self_attn.o_proj.bias": weights[f"{g}.attn.c_proj.bias"],
            f"{p}.post_attention_layernorm.weight": weights[f"{g}.ln_2.weight"], f"{p}.post_attention_layernorm.bias": weights[f"{g}.ln_2.bias"],
            f"{p}.mlp.up_proj.weight": weights[f"{g}.mlp.c_fc.weight"].T, f"{p}.mlp.up_proj.bias": weights[f"{g}.mlp.c_fc.bias"],
            f"{p}.mlp.down_proj.weight": weights[f"{g}.mlp.c_proj.weight"].T, f"{p}.mlp.down_proj.bias": weights[f"{g}.mlp.c_proj.bias"],
        })
    return out


def f32_list(t: torch.Tensor):
    """Nested lists of floats, each the shortest decimal that reads back as the same float32."""
    a = t.detach().to(torch.float32).cpu().numpy()
    if a.ndim == 0:
        return float(str(np.float32(a)))
    return [f32_list(torch.from_numpy(row)) for row in a] if a.ndim > 1 else [float(str(x)) for x in a]


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach() - b.detach()).abs().max())


def require(ok: bool, what: str) -> None:
    if not ok:
        raise SystemExit(f"reference check failed: {what}")


def reinit_weights(model: LlamaForCausalLM, generator: torch.Generator) -> None:
    """Weights big enough that attention is far from uniform: N(0, 0.1^2); norm weights 1 + 0.1 * N(0, 1); biases
    (transformers starts them at 0) N(0, 0.1^2) too, so that they show in every output."""
    with torch.no_grad():
        for name, param in model.named_parameters():  # a tied lm_head is listed once, as the embedding
            noise = torch.randn(param.shape, generator=generator)
            if name.endswith("norm.weight") or re.search(r"\bln_(\d|f)\.weight$", name):
                param.copy_(1.0 + 0.1 * noise)
            else:
                param.copy_(0.1 * noise)


def layer_of(param_name: str) -> int:
    match = re.search(r"\.layers\.(\d+)\.", param_name)
    if match is None:
        raise ValueError(f"no layer index in parameter name {param_name!r}")
    return int(match.group(1))


def peft_params(peft_model, suffix: str) -> dict[int, torch.nn.Parameter]:
    """PEFT's adaption_prompt / adaption_gate parameters by layer index."""
    found = {layer_of(n): p for n, p in peft_model.named_parameters() if n.endswith(suffix)}
    return dict(sorted(found.items()))


def legacy_config(config: LlamaConfig) -> dict:
    """The same config as transformers 4.x (and most hub checkpoints) write it: rope_theta and rope_scaling at
    the top level, instead of 5.x's rope_parameters. Lets the TS loader be tested on both spellings."""
    d = json.loads(config.to_json_string())
    if "rope_parameters" not in d:  # GPT-2: no RoPE, one spelling
        return d
    if "full_attention" in d["rope_parameters"]:  # Gemma 3: the full layers' RoPE, and rope_local_base_freq
        per_type = d.pop("rope_parameters")
        d["rope_local_base_freq"] = per_type["sliding_attention"]["rope_theta"]
        d["rope_parameters"] = per_type["full_attention"]
    rope = dict(d.pop("rope_parameters"))
    d["rope_theta"] = rope.pop("rope_theta")
    d["rope_scaling"] = rope if rope.get("rope_type", "default") != "default" else None
    return d


# ---------------------------------------------------------------------------------------------------------------
# One case


def build_case(case: Case) -> dict:
    """Builds the model and the three adapted variants of one case, checks them, writes the folders and
    returns the fixture (also written as fixture.json):

    {
      "format_version": 1, "case": str, "generated_by": {...versions...},
      "config": {the model's config.json as saved}, "legacy_config": {same, transformers 4.x spelling},
      "rope_inv_freq": [headDim/2],                  after llama3 scaling when configured
      "adapter_len": K, "adapter_layers": [layer indices adapted, ascending],
      "input_ids": [B][T] ints, "labels": [B][T] ints (-100 = ignored; loss shifts them inside),
      "base": {"logits": [B][T][V], "loss": float},
      "peft": {"prompts": {"<layer>": [K][hidden]}, "gates": {"<layer>": float},
               "logits": [B][T][V], "loss": float,
               "grads": {"prompts": {"<layer>": [K][hidden]}, "gates": {"<layer>": float}}},
      "zero_gate": {"max_abs_diff": float},          PEFT with all gates 0 vs base logits
      "tanh": {"prompts": {"<layer>": [K][hidden]}, "gates": {"<layer>": [nHeads]},
               "logits": [B][T][V], "loss": float,
               "grads": {"prompts": {"<layer>": [K][hidden]}, "gates": {"<layer>": [nHeads]}}},
      "checks": {max abs diffs that prove the reference}
    }
    """
    case_dir = OUT_ROOT / case.name
    if case_dir.exists():
        shutil.rmtree(case_dir)
    case_dir.mkdir(parents=True)

    torch.manual_seed(case.seed)
    generator = torch.Generator().manual_seed(case.seed)
    config_class, model_class = FAMILIES[case.family]
    config = config_class(**case.config, attn_implementation="eager")
    model = model_class(config).eval()
    reinit_weights(model, generator)
    model.save_pretrained(case_dir / "model", safe_serialization=True)
    shape = LlamaShape.from_hf_config(model.config)
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if case.family == "phi3":  # the hand forward reads LLaMA's names: Phi-3's fused projections, split by rows
        q, kv, ffn = shape.num_heads * shape.head_dim, shape.num_kv_heads * shape.head_dim, shape.intermediate_size
        for i in range(shape.num_layers):
            p = f"model.layers.{i}"
            qw, kw, vw = weights[f"{p}.self_attn.qkv_proj.weight"].split([q, kv, kv])
            gw, uw = weights[f"{p}.mlp.gate_up_proj.weight"].split([ffn, ffn])
            weights.update({f"{p}.self_attn.q_proj.weight": qw, f"{p}.self_attn.k_proj.weight": kw,
                            f"{p}.self_attn.v_proj.weight": vw, f"{p}.mlp.gate_proj.weight": gw, f"{p}.mlp.up_proj.weight": uw})

    if case.family == "gpt2":
        weights = gpt2_as_llama_names(weights, shape)

    B, T = 2, case.seq_len
    input_ids = torch.randint(0, shape.vocab_size, (B, T), generator=generator)  # [B, T]
    labels = input_ids.clone()
    for row, n in enumerate(case.prompt_lens):
        labels[row, :n] = -100  # the "prompt" part of the row is not trained on

    adapter_layers = list(range(shape.num_layers))[-ADAPTER_LAYERS:]
    checks: dict[str, float] = {}

    # --- base model: transformers vs the hand forward
    inv_freq = rope_inv_freq(shape)
    rotary = model.model.rotary_emb if case.family != "gpt2" else None  # GPT-2 has learned positions, no RoPE
    if rotary is None:
        inv_freq = torch.zeros(0)
    elif shape.local_rope_theta is not None:  # Gemma 3 keeps one table per layer type
        checks["local_rope_inv_freq_vs_transformers"] = max_abs(rope_inv_freq(shape, local=True), rotary.sliding_attention_inv_freq)
        require(checks["local_rope_inv_freq_vs_transformers"] < 1e-7, "local RoPE inverse frequencies differ from transformers")
    if rotary is not None:
        checks["rope_inv_freq_vs_transformers"] = max_abs(inv_freq, rotary.full_attention_inv_freq if shape.local_rope_theta is not None else rotary.inv_freq)
        require(checks["rope_inv_freq_vs_transformers"] < 1e-7, "RoPE inverse frequencies differ from transformers")
    with torch.no_grad():
        base_out = model(input_ids=input_ids, labels=labels)
        base_logits = base_out.logits  # [B, T, V]
        hand_logits = forward(weights, shape, input_ids)
        checks["hand_vs_transformers_logits"] = max_abs(hand_logits, base_logits)
        checks["hand_vs_transformers_loss"] = abs(float(causal_lm_loss(hand_logits, labels) - base_out.loss))
        zero_tanh = AdapterWeights(
            prompts={i: torch.randn(ADAPTER_LEN, shape.hidden_size, generator=generator) for i in adapter_layers},
            gates={i: torch.zeros(shape.num_heads) for i in adapter_layers},
            gate_fn="tanh",
        )
        checks["hand_tanh_zero_gate_vs_transformers_logits"] = max_abs(
            forward(weights, shape, input_ids, zero_tanh), base_logits
        )
    require(checks["hand_vs_transformers_logits"] < TOL_HAND_VS_HF, "hand forward != transformers")
    require(checks["hand_vs_transformers_loss"] < TOL_HAND_VS_HF, "hand loss != transformers loss")
    require(checks["hand_tanh_zero_gate_vs_transformers_logits"] < TOL_HAND_VS_HF, "zero tanh gates != base")

    check_saved_model(case, case_dir, input_ids, base_logits)
    # PEFT's AdaptedAttention applies o_proj to the prompt's output on its own and adds it, so a biased o_proj
    # adds its bias twice (even with zero gates): on such a model PEFT is not the paper's method, and no reference.
    if case.family not in PEFT_FAMILIES or case.config.get("attention_bias"):
        return finish_case(case, case_dir, model, shape, weights, generator, input_ids, labels, adapter_layers,
                           inv_freq, base_out, base_logits, checks, peft_part=None)

    # --- PEFT adaption prompt (wraps the attention modules of `model` in place)
    peft_config = AdaptionPromptConfig(
        adapter_len=ADAPTER_LEN, adapter_layers=ADAPTER_LAYERS, task_type="CAUSAL_LM"
    )
    peft_model = get_peft_model(model, peft_config).eval()
    prompts = peft_params(peft_model, "adaption_prompt")  # layer -> [1, K, hidden]
    gates = peft_params(peft_model, "adaption_gate")  # layer -> [1]
    require(list(prompts) == adapter_layers, f"PEFT adapted layers {list(prompts)}, expected {adapter_layers}")
    with torch.no_grad():
        for layer in adapter_layers:
            prompts[layer].copy_(torch.randn(prompts[layer].shape, generator=generator))
            gates[layer].zero_()
        zero_gate_logits = peft_model(input_ids=input_ids).logits
        checks["peft_zero_gate_vs_base_logits"] = max_abs(zero_gate_logits, base_logits)
        require(checks["peft_zero_gate_vs_base_logits"] < 1e-6, "PEFT with zero gates != base model")
        for layer, value in zip(adapter_layers, PEFT_GATES[-len(adapter_layers):]):
            gates[layer].fill_(value)

    peft_out = peft_model(input_ids=input_ids, labels=labels)
    peft_model.zero_grad()
    peft_out.loss.backward()

    # The hand forward with PEFT's convention (same raw gate for every head, no tanh) must match PEFT,
    # gradients included: d loss / d gate_layer = sum over heads of d loss / d gate_head.
    as_peft = AdapterWeights(
        prompts={i: prompts[i].detach()[0].clone().requires_grad_() for i in adapter_layers},
        gates={i: gates[i].detach().expand(shape.num_heads).clone().requires_grad_() for i in adapter_layers},
        gate_fn="identity",
    )
    hand_peft_logits = forward(weights, shape, input_ids, as_peft)
    hand_peft_loss = causal_lm_loss(hand_peft_logits, labels)
    hand_peft_loss.backward()
    checks["hand_vs_peft_logits"] = max_abs(hand_peft_logits, peft_out.logits)
    checks["hand_vs_peft_loss"] = abs(float(hand_peft_loss.detach() - peft_out.loss.detach()))
    checks["hand_vs_peft_prompt_grads"] = max(
        max_abs(as_peft.prompts[i].grad, prompts[i].grad[0]) for i in adapter_layers
    )
    checks["hand_vs_peft_gate_grads"] = max(
        abs(float(as_peft.gates[i].grad.sum() - gates[i].grad[0])) for i in adapter_layers
    )
    checks["peft_vs_base_logits"] = max_abs(peft_out.logits, base_logits)  # must be far from 0
    require(checks["hand_vs_peft_logits"] < TOL_HAND_VS_PEFT, "hand forward != PEFT logits")
    require(checks["hand_vs_peft_loss"] < TOL_HAND_VS_PEFT, "hand loss != PEFT loss")
    require(checks["hand_vs_peft_prompt_grads"] < TOL_GRAD_VS_PEFT, "hand prompt grads != PEFT")
    require(checks["hand_vs_peft_gate_grads"] < TOL_GRAD_VS_PEFT, "hand gate grads != PEFT")
    require(checks["peft_vs_base_logits"] > 1e-3, "non-zero PEFT gates barely change the logits")

    peft_model.save_pretrained(case_dir / "peft_adapter")
    (case_dir / "peft_adapter" / "README.md").unlink()  # PEFT's model-card template; not part of the format
    checks.update(check_saved_folders(case, case_dir, input_ids, base_logits, peft_out.logits))
    peft_part = {
        "prompts": {str(i): f32_list(p[0]) for i, p in prompts.items()},
        "gates": {str(i): f32_list(g[0]) for i, g in gates.items()},
        "logits": f32_list(peft_out.logits),
        "loss": f32_list(peft_out.loss),
        "grads": {
            "prompts": {str(i): f32_list(p.grad[0]) for i, p in prompts.items()},
            "gates": {str(i): f32_list(g.grad[0]) for i, g in gates.items()},
        },
    }
    return finish_case(case, case_dir, model, shape, weights, generator, input_ids, labels, adapter_layers,
                       inv_freq, base_out, base_logits, checks, peft_part)


def finish_case(case, case_dir, model, shape, weights, generator, input_ids, labels, adapter_layers, inv_freq,
                base_out, base_logits, checks, peft_part):
    """The official tanh-gated adapter on the hand forward, and fixture.json (`peft` null for a family PEFT's
    adaption prompt does not support)."""
    # --- LLaMA-Adapter v1, official training form: per-head gates through tanh
    tanh_adapter = AdapterWeights(
        prompts={
            i: torch.randn(ADAPTER_LEN, shape.hidden_size, generator=generator).requires_grad_()
            for i in adapter_layers
        },
        gates={i: (0.5 * torch.randn(shape.num_heads, generator=generator)).requires_grad_() for i in adapter_layers},
        gate_fn="tanh",
    )
    tanh_logits = forward(weights, shape, input_ids, tanh_adapter)
    tanh_loss = causal_lm_loss(tanh_logits, labels)
    tanh_loss.backward()
    checks["tanh_vs_base_logits"] = max_abs(tanh_logits, base_logits)
    require(checks["tanh_vs_base_logits"] > 1e-3, "tanh gates barely change the logits")

    def by_layer(tensors: dict[int, torch.Tensor]) -> dict[str, object]:
        return {str(i): f32_list(t) for i, t in tensors.items()}

    fixture = {
        "format_version": FORMAT_VERSION,
        "case": case.name,
        "generated_by": {
            "script": "tools/make_parity_fixtures.py",
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "safetensors": safetensors.__version__,
        },
        "config": json.loads((case_dir / "model" / "config.json").read_text()),
        "legacy_config": legacy_config(model.config),
        "rope_inv_freq": f32_list(inv_freq),
        "adapter_len": ADAPTER_LEN,
        "adapter_layers": adapter_layers,
        "input_ids": input_ids.tolist(),
        "labels": labels.tolist(),
        "base": {"logits": f32_list(base_logits), "loss": f32_list(base_out.loss)},
        "family": case.family,
        "peft": peft_part,
        "zero_gate": {"max_abs_diff": checks.get("peft_zero_gate_vs_base_logits", checks["hand_tanh_zero_gate_vs_transformers_logits"])},
        "tanh": {
            "prompts": by_layer(tanh_adapter.prompts),
            "gates": by_layer(tanh_adapter.gates),
            "logits": f32_list(tanh_logits),
            "loss": f32_list(tanh_loss),
            "grads": {
                "prompts": by_layer({i: p.grad for i, p in tanh_adapter.prompts.items()}),
                "gates": by_layer({i: g.grad for i, g in tanh_adapter.gates.items()}),
            },
        },
        "checks": checks,
    }
    (case_dir / "fixture.json").write_text(json.dumps(fixture, separators=(",", ":")) + "\n")
    return fixture


def check_saved_model(case: Case, case_dir: Path, input_ids: torch.Tensor, base_logits: torch.Tensor) -> None:
    """The HF folder reads back to the same model."""
    reloaded = FAMILIES[case.family][1].from_pretrained(case_dir / "model", attn_implementation="eager").eval()
    with torch.no_grad():
        require(max_abs(reloaded(input_ids=input_ids).logits, base_logits) == 0.0, "model/ does not reload to the same logits")


def check_saved_folders(
    case: Case, case_dir: Path, input_ids: torch.Tensor, base_logits: torch.Tensor, peft_logits: torch.Tensor
) -> dict[str, float]:
    """What was written reads back to the same model: the HF folder, and it plus PEFT's adapter folder."""
    reloaded = FAMILIES[case.family][1].from_pretrained(case_dir / "model", attn_implementation="eager").eval()
    with torch.no_grad():
        base_diff = max_abs(reloaded(input_ids=input_ids).logits, base_logits)
        with_adapter = PeftModel.from_pretrained(reloaded, case_dir / "peft_adapter").eval()
        peft_diff = max_abs(with_adapter(input_ids=input_ids).logits, peft_logits)
    require(base_diff == 0.0, "model/ does not reload to the same logits")
    require(peft_diff == 0.0, "peft_adapter/ does not reload to the same logits")
    return {"reloaded_model_vs_base_logits": base_diff, "reloaded_peft_adapter_vs_peft_logits": peft_diff}


def describe_peft_adapter(case_dir: Path) -> None:
    adapter_dir = case_dir / "peft_adapter"
    with safe_open(adapter_dir / "adapter_model.safetensors", framework="pt") as f:
        for key in sorted(f.keys()):
            print(f"    {key} {list(f.get_slice(key).get_shape())}")


def main() -> None:
    torch.set_num_threads(2)
    transformers.utils.logging.disable_progress_bar()
    total = 0
    # Cases named on the command line only (default: all), so that adding one leaves the others' files alone.
    wanted = set(sys.argv[1:])
    for case in [c for c in CASES if not wanted or c.name in wanted]:
        fixture = build_case(case)
        case_dir = OUT_ROOT / case.name
        size = sum(p.stat().st_size for p in case_dir.rglob("*") if p.is_file())
        total += size
        worst = {k: f"{v:.2e}" for k, v in fixture["checks"].items()}
        print(f"{case.name}: {size / 1024:.0f} KiB, checks {worst}")
        if fixture["peft"] is not None:
            print("  PEFT adapter keys:")
            describe_peft_adapter(case_dir)
    print(f"total {total / 1024:.0f} KiB under {OUT_ROOT.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
