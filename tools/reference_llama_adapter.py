"""A plain PyTorch forward of a LLaMA model with LLaMA-Adapter prompts, written out step by step.

This is the reference that the TypeScript engine (src-main/engine/) is checked against. It does not use
transformers' or PEFT's modules for the math: it reads the weights of a Hugging Face `LlamaForCausalLM`
(a state dict with HF key names) and computes

    embedding -> [RMSNorm -> attention (+ adapter prompt) -> residual -> RMSNorm -> SwiGLU MLP -> residual] x n
              -> final RMSNorm -> lm_head

The adapter follows LLaMA-Adapter v1 (Zhang et al. 2023, "LLaMA-Adapter: Efficient Fine-tuning of Language
Models with Zero-init Attention", arXiv:2303.16199; official training code
github.com/OpenGVLab/LLaMA-Adapter, alpaca_finetuning_v1/llama/model.py): in each adapted layer, K learned prompt
vectors P [K, hidden] are projected with the layer's own k_proj / v_proj (no RoPE, no mask), every query attends
to them with a softmax of their own, and that output, scaled by a zero-initialised gate, is added to the token
attention output before o_proj:

    out_h = softmax(q_h k_h^T / sqrt(d) + causal) v_h  +  g_h * softmax(q_h kp_h^T / sqrt(d)) vp_h

The official code uses one gate per head with g_h = tanh(gate_h). PEFT's `AdaptionPromptConfig` uses one raw
scalar gate per layer (g_h = gate for every head, no tanh); both are covered by `AdapterWeights.gate_fn`.

Used by tools/make_parity_fixtures.py; importable by other checks (e.g. loading official .pth adapters).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

GateFn = Literal["tanh", "identity"]


@dataclass(frozen=True)
class LlamaShape:
    """The numbers of a LLaMA config.json that the forward needs."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    # None for plain RoPE; else the llama3 keys: factor, low_freq_factor, high_freq_factor,
    # original_max_position_embeddings.
    rope_llama3: dict | None
    tie_word_embeddings: bool
    # Gemma: RMSNorm by (1 + weight), embeddings times sqrt(hidden) (a float32), a GELU-gated MLP.
    norm_plus_one: bool = False
    embed_scale: float | None = None
    activation: str = "silu"  # silu | gelu_pytorch_tanh
    # Gemma 2: norms after attention and after the MLP, query_pre_attn_scalar ** -0.5, soft caps.
    sandwich_norms: bool = False
    attn_scale: float | None = None
    attn_softcap: float | None = None
    final_softcap: float | None = None
    # Sliding-window attention (Mistral, Gemma 2 / 3, Phi-3): a query at i sees keys i - W + 1 .. i, in the layers
    # `sliding_layers` marks (None: every layer). Gemma 3's sliding layers rotate by a base of their own, unscaled.
    sliding_window: int | None = None
    sliding_layers: tuple[bool, ...] | None = None
    local_rope_theta: float | None = None
    rope_linear_factor: float | None = None
    # Phi-3's LongRoPE: per-frequency divisors, `short` up to `original` positions and `long` beyond (chosen by the
    # sequence's length), and cos/sin times `attention_factor`.
    rope_longrope: dict | None = None
    # Phi-3's partial_rotary_factor: RoPE on the first `rotary_dim` features of each head, the rest passed through.
    rotary_dim: int | None = None
    # GPT-2: LayerNorm with a bias (`rms_norm_eps` is its layer_norm_epsilon), learned position embeddings instead of
    # RoPE (model.embed_positions.weight), an ungated MLP with biases: down(act(up(x))).
    layer_norm: bool = False
    learned_positions: bool = False
    plain_mlp: bool = False

    @staticmethod
    def from_hf_config(config) -> "LlamaShape":
        """Reads a transformers LlamaConfig (5.x keeps RoPE settings in `rope_parameters`)."""
        if config.model_type == "gpt2":
            if config.activation_function not in ("gelu_new", "gelu_pytorch_tanh"):
                raise ValueError(f"activation {config.activation_function!r} is not covered by this reference")
            return LlamaShape(
                vocab_size=config.vocab_size,
                hidden_size=config.n_embd,
                intermediate_size=config.n_inner or 4 * config.n_embd,
                num_layers=config.n_layer,
                num_heads=config.n_head,
                num_kv_heads=config.n_head,
                head_dim=config.n_embd // config.n_head,
                rms_norm_eps=config.layer_norm_epsilon,
                rope_theta=10000.0,  # unused: no RoPE
                rope_llama3=None,
                tie_word_embeddings=bool(config.tie_word_embeddings),
                activation="gelu_pytorch_tanh",  # gelu_new is the same tanh formula
                layer_norm=True,
                learned_positions=True,
                plain_mlp=True,
            )
        rope = dict(getattr(config, "rope_parameters", None) or {})
        local_rope_theta = None
        if "full_attention" in rope:  # Gemma 3: RoPE settings per layer type
            local = rope["sliding_attention"]
            if local.get("rope_type", "default") != "default":
                raise ValueError("scaled RoPE on sliding layers is not covered by this reference")
            local_rope_theta = float(local["rope_theta"])
            rope = dict(rope["full_attention"])
        rope_theta = rope.get("rope_theta", getattr(config, "rope_theta", None))
        if rope_theta is None:
            raise ValueError("config has no rope_theta (neither top-level nor in rope_parameters)")
        rope_type = rope.get("rope_type", "default")
        if rope_type in ("longrope", "su"):
            original = rope.get("original_max_position_embeddings") or config.original_max_position_embeddings
            factor = rope.get("factor") or config.max_position_embeddings / original
            attention_factor = rope.get("attention_factor") or (1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(original)))
            longrope = {"short": list(rope["short_factor"]), "long": list(rope["long_factor"]), "original": int(original), "attention_factor": float(attention_factor)}
            rope_type = "default"
        else:
            longrope = None
        if rope_type not in ("default", "llama3", "linear"):
            raise ValueError(f"rope_type {rope_type!r} is not covered by this reference")
        gemma_like = config.model_type in ("gemma", "gemma2", "gemma3_text")
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        layer_types = getattr(config, "layer_types", None)
        mixed = config.model_type in ("gemma2", "gemma3_text")
        return LlamaShape(
            vocab_size=config.vocab_size,
            hidden_size=config.hidden_size,
            intermediate_size=config.intermediate_size,
            num_layers=config.num_hidden_layers,
            num_heads=config.num_attention_heads,
            num_kv_heads=config.num_key_value_heads,
            head_dim=getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads,
            rms_norm_eps=config.rms_norm_eps,
            rope_theta=float(rope_theta),
            rope_llama3=rope if rope_type == "llama3" else None,
            tie_word_embeddings=bool(config.tie_word_embeddings),
            norm_plus_one=gemma_like,
            embed_scale=float(torch.tensor(config.hidden_size**0.5)) if gemma_like else None,
            activation=getattr(config, "hidden_activation", None) or config.hidden_act,
            sandwich_norms=mixed,
            attn_scale=config.query_pre_attn_scalar**-0.5 if mixed else None,
            attn_softcap=getattr(config, "attn_logit_softcapping", None),
            final_softcap=getattr(config, "final_logit_softcapping", None),
            # Qwen's config keeps sliding_window only with use_sliding_window, for the layers layer_types names.
            sliding_window=getattr(config, "sliding_window", None) if config.model_type in ("mistral", "gemma2", "gemma3_text", "phi3", "qwen2", "qwen3") else None,
            sliding_layers=tuple(t == "sliding_attention" for t in layer_types) if mixed or config.model_type in ("qwen2", "qwen3") else None,
            local_rope_theta=local_rope_theta,
            rope_linear_factor=float(rope["factor"]) if rope_type == "linear" else None,
            rope_longrope=longrope,
            rotary_dim=int(head_dim * partial) if (partial := rope.get("partial_rotary_factor", getattr(config, "partial_rotary_factor", 1.0)) or 1.0) < 1.0 else None,
        )

    def window(self, layer: int) -> int | None:
        """The sliding window of `layer`, or None for full attention."""
        if self.sliding_window is None or (self.sliding_layers is not None and not self.sliding_layers[layer]):
            return None
        return self.sliding_window

    def local_rope(self, layer: int) -> bool:
        return self.local_rope_theta is not None and self.sliding_layers is not None and self.sliding_layers[layer]


@dataclass
class AdapterWeights:
    """Adapter prompts and gates for the adapted layers (keys: layer index)."""

    prompts: dict[int, Tensor]  # layer -> [K, hidden]
    gates: dict[int, Tensor]  # layer -> [nHeads] raw gate values (before gate_fn)
    gate_fn: GateFn = "tanh"
    # The multi-modal term of the paper (P_l + Repeat_K(proj(I))): a per-example [B, 1 or K, hidden] tensor added to
    # every adapted layer's prompt, or None for text only.
    prompt_bias: Tensor | None = None


# ---------------------------------------------------------------------------------------------------------------
# RoPE


def rope_inv_freq(shape: LlamaShape, local: bool = False, seq_len: int | None = None) -> Tensor:
    """Inverse frequencies theta^(-2i/d), i < d/2; with llama3, linear or LongRoPE scaling when configured (LongRoPE's
    long factors for a `seq_len` past the original context); `local`: Gemma 3's sliding layers (their own base,
    unscaled). -> [headDim/2]"""
    d = shape.rotary_dim or shape.head_dim  # the features that rotate
    if shape.rope_longrope is not None:
        r = shape.rope_longrope
        ext = torch.tensor(r["long"] if seq_len and seq_len > r["original"] else r["short"], dtype=torch.float32)
        return 1.0 / (ext * shape.rope_theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    theta = shape.local_rope_theta if local else shape.rope_theta
    inv_freq = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float32) / d))  # [d/2]
    if local:
        return inv_freq
    if shape.rope_linear_factor is not None:
        return inv_freq / shape.rope_linear_factor
    if shape.rope_llama3 is None:
        return inv_freq
    # Llama 3.1 "frequency-dependent" scaling: long wavelengths (beyond the original context) are slowed down by
    # `factor`, short ones are kept, and the band between is interpolated smoothly.
    r = shape.rope_llama3
    factor = r["factor"]
    low_freq_factor = r["low_freq_factor"]
    high_freq_factor = r["high_freq_factor"]
    old_context_len = r["original_max_position_embeddings"]
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    wavelen = 2 * math.pi / inv_freq  # [d/2]
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    is_medium = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen)
    return torch.where(is_medium, smoothed, scaled)


def rope_cos_sin(inv_freq: Tensor, seq_len: int) -> tuple[Tensor, Tensor]:
    """cos/sin tables for positions 0..T-1 in HF's half-split layout. -> ([T, headDim], [T, headDim])"""
    positions = torch.arange(seq_len, dtype=torch.float32)  # [T]
    freqs = positions[:, None] * inv_freq[None, :]  # [T, d/2]
    angles = torch.cat([freqs, freqs], dim=-1)  # [T, d]: dims i and i + d/2 share a frequency
    return angles.cos(), angles.sin()


def rotate_half(x: Tensor) -> Tensor:
    """HF's rotation: (x1, x2) -> (-x2, x1) over the two halves of the last dim."""
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x [B, heads, T, d]; cos, sin [T, r] (r <= d: partial rotary rotates the first r features) -> [B, heads, T, d]"""
    r = cos.shape[-1]
    rot, rest = x[..., :r], x[..., r:]
    return torch.cat([rot * cos + rotate_half(rot) * sin, rest], dim=-1)


# ---------------------------------------------------------------------------------------------------------------
# Blocks


def rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    """x [..., hidden] -> [..., hidden]"""
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def layer_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
    """GPT-2's LayerNorm, written out: (x - mean) / sqrt(biased variance + eps) * weight + bias. x [..., hidden]"""
    mean = x.mean(-1, keepdim=True)
    var = (x - mean).pow(2).mean(-1, keepdim=True)
    return (x - mean) * torch.rsqrt(var + eps) * weight + bias


def repeat_kv(x: Tensor, n_rep: int) -> Tensor:
    """[B, kvHeads, S, d] -> [B, kvHeads * n_rep, S, d]; query head h reads kv head h // n_rep."""
    return x.repeat_interleave(n_rep, dim=1)


def split_heads(x: Tensor, n_heads: int, head_dim: int) -> Tensor:
    """[B, S, n_heads * d] -> [B, n_heads, S, d]"""
    b, s, _ = x.shape
    return x.view(b, s, n_heads, head_dim).transpose(1, 2)


GATE_FUNCTIONS: dict[str, Callable[[Tensor], Tensor]] = {"tanh": torch.tanh, "identity": lambda g: g}


def attention(
    w: dict[str, Tensor],
    prefix: str,
    shape: LlamaShape,
    x: Tensor,
    cos: Tensor,
    sin: Tensor,
    prompt: Tensor | None,
    gate: Tensor | None,
    gate_fn: GateFn,
    prompt_bias: Tensor | None = None,
    window: int | None = None,
) -> Tensor:
    """One attention block on normed input x [B, T, hidden] -> [B, T, hidden] (after o_proj); `window`: each query
    sees only itself and the window - 1 keys before it."""
    B, T, _ = x.shape
    H, KV, d = shape.num_heads, shape.num_kv_heads, shape.head_dim
    n_rep = H // KV
    q = split_heads(proj(w, f"{prefix}.q_proj", x), H, d)  # [B, H, T, d]
    k = split_heads(proj(w, f"{prefix}.k_proj", x), KV, d)  # [B, KV, T, d]
    v = split_heads(proj(w, f"{prefix}.v_proj", x), KV, d)  # [B, KV, T, d]
    # Qwen3's and Gemma 3's q_norm / k_norm: RMSNorm over each head's d values, before RoPE (Gemma's by 1 + w).
    q_norm, k_norm = w.get(f"{prefix}.q_norm.weight"), w.get(f"{prefix}.k_norm.weight")
    if q_norm is not None and shape.norm_plus_one:
        q_norm, k_norm = 1.0 + q_norm, 1.0 + k_norm
    if q_norm is not None:
        q = rms_norm(q, q_norm, shape.rms_norm_eps)
        k = rms_norm(k, k_norm, shape.rms_norm_eps)
    if not shape.learned_positions:  # GPT-2 adds its positions to the embeddings instead
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)
    k = repeat_kv(k, n_rep)  # [B, H, T, d]
    v = repeat_kv(v, n_rep)  # [B, H, T, d]

    scale = shape.attn_scale if shape.attn_scale is not None else 1.0 / math.sqrt(d)

    def logits(keys: Tensor) -> Tensor:
        # Gemma 2 soft-caps the scaled logits (before the mask); the prompt's logits are capped alike.
        x = (q @ keys.transpose(-1, -2)) * scale
        return x if shape.attn_softcap is None else torch.tanh(x / shape.attn_softcap) * shape.attn_softcap

    causal = torch.full((T, T), float("-inf")).triu(1)  # [T, T]: 0 on and below the diagonal
    if window is not None:  # and -inf from `window` places below it: key j visible from query i iff i - W < j <= i
        causal = causal + torch.full((T, T), float("-inf")).tril(-window)
    scores = logits(k) + causal  # [B, H, T, T]
    out = F.softmax(scores, dim=-1) @ v  # [B, H, T, d]

    if prompt is not None:
        K = prompt.shape[0]
        p = prompt[None] if prompt_bias is None else prompt[None] + prompt_bias  # [1 or B, K, hidden]
        Bp = p.shape[0]
        # The prompt goes through this layer's key/value projections (biases included, as PEFT's k_proj(prompt))
        # as if it were K extra tokens, but with no position (no RoPE) and visible to every query (no mask).
        kp = proj(w, f"{prefix}.k_proj", p).view(Bp, K, KV, d)  # [Bp, K, KV, d]
        if k_norm is not None:  # the layer's key path includes Qwen3's k_norm (queries are normed too)
            kp = rms_norm(kp, k_norm, shape.rms_norm_eps)
        kp = kp.transpose(1, 2)  # [Bp, KV, K, d]
        vp = proj(w, f"{prefix}.v_proj", p).view(Bp, K, KV, d).transpose(1, 2)  # [Bp, KV, K, d]
        kp = repeat_kv(kp, n_rep)  # [Bp, H, K, d]
        vp = repeat_kv(vp, n_rep)  # [Bp, H, K, d]
        prompt_scores = logits(kp)  # [B, H, T, K]
        prompt_out = F.softmax(prompt_scores, dim=-1) @ vp  # [B, H, T, d]
        head_gate = GATE_FUNCTIONS[gate_fn](gate).view(1, H, 1, 1)  # [1, H, 1, 1]
        out = out + head_gate * prompt_out

    out = out.transpose(1, 2).reshape(B, T, H * d)  # [B, T, hidden]
    return proj(w, f"{prefix}.o_proj", out)  # [B, T, hidden]


def proj(w: dict[str, Tensor], name: str, x: Tensor) -> Tensor:
    """A linear layer as nn.Linear: x @ W.T, plus its bias where the checkpoint has one (Qwen2's q/k/v,
    LLaMA's with attention_bias)."""
    y = x @ w[f"{name}.weight"].T
    bias = w.get(f"{name}.bias")
    return y if bias is None else y + bias


# transformers reads a Gemma config's legacy hidden_act "gelu" as gelu_pytorch_tanh, so only these two occur.
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "silu": F.silu,
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
}


def mlp(w: dict[str, Tensor], prefix: str, x: Tensor, activation: str = "silu", plain: bool = False) -> Tensor:
    """SwiGLU (GeGLU for Gemma): down(act(gate(x)) * up(x)); `plain` (GPT-2): down(act(up(x))), biases included.
    x [B, T, hidden] -> [B, T, hidden]"""
    if plain:
        return proj(w, f"{prefix}.down_proj", ACTIVATIONS[activation](proj(w, f"{prefix}.up_proj", x)))
    gate = x @ w[f"{prefix}.gate_proj.weight"].T  # [B, T, inter]
    up = x @ w[f"{prefix}.up_proj.weight"].T  # [B, T, inter]
    return (ACTIVATIONS[activation](gate) * up) @ w[f"{prefix}.down_proj.weight"].T


def forward(
    w: dict[str, Tensor], shape: LlamaShape, input_ids: Tensor, adapter: AdapterWeights | None = None
) -> Tensor:
    """Logits of a LlamaForCausalLM given its HF-named weights. input_ids [B, T] -> logits [B, T, vocab]"""
    if adapter is not None:
        for layer in adapter.prompts:
            if not 0 <= layer < shape.num_layers:
                raise ValueError(f"adapter layer {layer} is outside 0..{shape.num_layers - 1}")
            if layer not in adapter.gates:
                raise ValueError(f"adapter layer {layer} has a prompt but no gate")
    T = input_ids.shape[1]
    cos, sin = rope_cos_sin(rope_inv_freq(shape, seq_len=T), T)  # [T, d] each
    if shape.rope_longrope is not None:  # LongRoPE scales the tables themselves
        cos, sin = cos * shape.rope_longrope["attention_factor"], sin * shape.rope_longrope["attention_factor"]
    local_cos, local_sin = rope_cos_sin(rope_inv_freq(shape, local=True), T) if shape.local_rope_theta is not None else (cos, sin)
    h = w["model.embed_tokens.weight"][input_ids]  # [B, T, hidden]
    if shape.learned_positions:  # GPT-2: position p's learned vector added to the token's
        h = h + w["model.embed_positions.weight"][:T]
    if shape.embed_scale is not None:
        h = h * torch.tensor(shape.embed_scale, dtype=h.dtype)
    eps = shape.rms_norm_eps

    def norm_weight(name: str) -> Tensor:
        return 1.0 + w[name] if shape.norm_plus_one else w[name]

    def norm(x: Tensor, name: str) -> Tensor:  # `name` ends in ".weight"
        if shape.layer_norm:
            return layer_norm(x, w[name], w[name[: -len("weight")] + "bias"], eps)
        return rms_norm(x, norm_weight(name), eps)

    for i in range(shape.num_layers):
        p = f"model.layers.{i}"
        adapted = adapter is not None and i in adapter.prompts
        x = norm(h, f"{p}.input_layernorm.weight")
        attended = attention(
            w,
            f"{p}.self_attn",
            shape,
            x,
            local_cos if shape.local_rope(i) else cos,
            local_sin if shape.local_rope(i) else sin,
            prompt=adapter.prompts[i] if adapted else None,
            gate=adapter.gates[i] if adapted else None,
            gate_fn=adapter.gate_fn if adapted else "identity",
            prompt_bias=adapter.prompt_bias if adapted else None,
            window=shape.window(i),
        )
        if shape.sandwich_norms:  # Gemma 2: post_attention_layernorm is the attention's, pre/post_feedforward the MLP's
            h = h + rms_norm(attended, norm_weight(f"{p}.post_attention_layernorm.weight"), eps)
            m = mlp(w, f"{p}.mlp", rms_norm(h, norm_weight(f"{p}.pre_feedforward_layernorm.weight"), eps), shape.activation)
            h = h + rms_norm(m, norm_weight(f"{p}.post_feedforward_layernorm.weight"), eps)
        else:
            h = h + attended
            h = h + mlp(w, f"{p}.mlp", norm(h, f"{p}.post_attention_layernorm.weight"), shape.activation, shape.plain_mlp)
    h = norm(h, "model.norm.weight")
    lm_head = w["model.embed_tokens.weight"] if shape.tie_word_embeddings else w["lm_head.weight"]
    out = h @ lm_head.T  # [B, T, vocab]
    return out if shape.final_softcap is None else torch.tanh(out / shape.final_softcap) * shape.final_softcap


def causal_lm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """HF convention: position t predicts labels[t + 1]; mean cross-entropy over targets that are not -100.
    logits [B, T, V], labels [B, T] -> scalar"""
    V = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=-100)
