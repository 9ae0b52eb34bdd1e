"""Meta's original LLaMA layout and the official LLaMA-Adapter v1 forward, for interop fixtures.

Two things the interop code (src-main/interop/) must get right are checked against this module:

1. The weight layout of Meta's checkpoints (params.json + consolidated.NN.pth), which differs from Hugging Face's
   in names and in the row order of wq / wk: Meta's rotary embedding rotates interleaved pairs (x0, x1), (x2, x3),
   ... of each head, HF's rotates the two halves (x_i, x_{i + d/2}). transformers' convert_llama_weights_to_hf.py
   permutes the rows of wq and wk within each head to turn one into the other:

       permute(w) = w.view(n_heads, head_dim // 2, 2, in_dim).transpose(1, 2).reshape(out_dim, in_dim)

   `hf_to_meta` applies the inverse, so a Meta-layout checkpoint can be made from any HF model.

2. The official LLaMA-Adapter v1 training forward (github.com/OpenGVLab/LLaMA-Adapter,
   alpaca_finetuning_v1/llama/model.py), written here in float32 on Meta-layout weights: complex-number RoPE,
   prompt keys/values prepended to the token keys/values, one score matrix, and two softmaxes over its prompt
   and token columns with the prompt part scaled by tanh(gate) (or the raw gate, as llama/model.py does at
   inference). Grouped-query attention follows Meta's LLaMA 2 code (repeat_kv: query head h reads kv head
   h // n_rep).

Model-parallel shards (MP > 1) split every matrix along the dimension that its fairscale layer is parallel in:
ColumnParallelLinear (wq, wk, wv, w1, w3, output) along the output rows (dim 0), RowParallelLinear (wo, w2) and
ParallelEmbedding (tok_embeddings) along dim 1; norms (and rope.freqs) are copied to every shard.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

# Meta name -> (HF name pattern, shard dimension or None for replicated)
LAYER_MAP = {
    "attention.wq.weight": ("self_attn.q_proj.weight", 0),
    "attention.wk.weight": ("self_attn.k_proj.weight", 0),
    "attention.wv.weight": ("self_attn.v_proj.weight", 0),
    "attention.wo.weight": ("self_attn.o_proj.weight", 1),
    "feed_forward.w1.weight": ("mlp.gate_proj.weight", 0),
    "feed_forward.w2.weight": ("mlp.down_proj.weight", 1),
    "feed_forward.w3.weight": ("mlp.up_proj.weight", 0),
    "attention_norm.weight": ("input_layernorm.weight", None),
    "ffn_norm.weight": ("post_attention_layernorm.weight", None),
}
TOP_MAP = {
    "tok_embeddings.weight": ("model.embed_tokens.weight", 1),
    "norm.weight": ("model.norm.weight", None),
    "output.weight": ("lm_head.weight", 0),
}


def permute_meta_to_hf(w: Tensor, n_heads: int) -> Tensor:
    """transformers' permute(): interleaved rotary pairs -> rotate-half order, within each head."""
    out_dim, in_dim = w.shape
    return w.view(n_heads, out_dim // n_heads // 2, 2, in_dim).transpose(1, 2).reshape(out_dim, in_dim)


def permute_hf_to_meta(w: Tensor, n_heads: int) -> Tensor:
    """The inverse of permute_meta_to_hf."""
    out_dim, in_dim = w.shape
    return w.view(n_heads, 2, out_dim // n_heads // 2, in_dim).transpose(1, 2).reshape(out_dim, in_dim)


def hf_to_meta(w: dict[str, Tensor], n_layers: int, n_heads: int, n_kv_heads: int, tied: bool) -> dict[str, Tensor]:
    """An HF LlamaForCausalLM state dict -> Meta's consolidated names and layout (one shard)."""
    out: dict[str, Tensor] = {}
    for meta, (hf, _) in TOP_MAP.items():
        source = "model.embed_tokens.weight" if (meta == "output.weight" and tied) else hf
        out[meta] = w[source].clone()
    for i in range(n_layers):
        for meta, (hf, _) in LAYER_MAP.items():
            t = w[f"model.layers.{i}.{hf}"].clone()
            if meta == "attention.wq.weight":
                t = permute_hf_to_meta(t, n_heads)
            elif meta == "attention.wk.weight":
                t = permute_hf_to_meta(t, n_kv_heads)
            out[f"layers.{i}.{meta}"] = t
    return out


def shard_dim(meta_name: str) -> int | None:
    if meta_name in TOP_MAP:
        return TOP_MAP[meta_name][1]
    suffix = meta_name.split(".", 2)[2]
    return LAYER_MAP[suffix][1]


def shard(meta: dict[str, Tensor], n_shards: int) -> list[dict[str, Tensor]]:
    """Split one consolidated state dict into n model-parallel ranks, as fairscale lays them out."""
    shards: list[dict[str, Tensor]] = [dict() for _ in range(n_shards)]
    for name, t in meta.items():
        dim = shard_dim(name)
        if dim is None:
            for s in shards:
                s[name] = t.clone()
        else:
            for s, part in zip(shards, torch.chunk(t, n_shards, dim=dim)):
                s[name] = part.clone().contiguous()
    return shards


# ---------------------------------------------------------------------------------------------------------------
# The official forward (alpaca_finetuning_v1/llama/model.py, float32)


def precompute_freqs_cis(head_dim: int, end: int, theta: float, llama3: dict | None) -> Tensor:
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 2)[: (head_dim // 2)].float() / head_dim))
    if llama3 is not None:
        freqs = apply_llama3_scaling(freqs, llama3)
    t = torch.arange(end, dtype=torch.float32)
    return torch.polar(torch.ones(end, head_dim // 2), torch.outer(t, freqs))  # [end, hd/2] complex64


def apply_llama3_scaling(freqs: Tensor, r: dict) -> Tensor:
    """Meta's llama3 apply_scaling (llama-models), with the constants as parameters."""
    factor, low, high, old = r["factor"], r["low_freq_factor"], r["high_freq_factor"], r["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old / low, old / high
    out = []
    for f in freqs.tolist():
        wavelen = 2 * math.pi / f
        if wavelen < high_wavelen:
            out.append(f)
        elif wavelen > low_wavelen:
            out.append(f / factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append((1 - smooth) * f / factor + smooth * f)
    return torch.tensor(out, dtype=freqs.dtype)


def apply_rotary_emb(x: Tensor, freqs_cis: Tensor) -> Tensor:
    """x [B, T, heads, hd] rotated as complex pairs (x0 + i x1, ...)."""
    xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(xc * freqs_cis[None, :, None, :]).flatten(3)


def rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def meta_forward(
    w: dict[str, Tensor],
    *,
    n_layers: int,
    n_heads: int,
    n_kv_heads: int,
    norm_eps: float,
    rope_theta: float,
    rope_llama3: dict | None,
    tokens: Tensor,
    adapter_query: Tensor | None = None,  # [L * K, dim]
    gates: dict[int, Tensor] | None = None,  # layer -> [1, n_heads, 1, 1]
    adapter_len: int = 0,
    gate_fn: str = "tanh",
) -> Tensor:
    """Logits [B, T, vocab] of a Meta-layout model, with the official v1 adapter on its top L layers."""
    B, T = tokens.shape
    dim = w["tok_embeddings.weight"].shape[1]
    hd = dim // n_heads
    n_rep = n_heads // n_kv_heads
    freqs_cis = precompute_freqs_cis(hd, T, rope_theta, rope_llama3)
    mask = torch.triu(torch.full((1, 1, T, T), float("-inf")), diagonal=1)
    h = w["tok_embeddings.weight"][tokens]
    adapter_layer = 0 if adapter_query is None else adapter_query.shape[0] // adapter_len
    prompts = None if adapter_query is None else adapter_query.reshape(adapter_layer, adapter_len, dim)
    for i in range(n_layers):
        p = f"layers.{i}."
        x = rms_norm(h, w[p + "attention_norm.weight"], norm_eps)
        xq = (x @ w[p + "attention.wq.weight"].T).view(B, T, n_heads, hd)
        xk = (x @ w[p + "attention.wk.weight"].T).view(B, T, n_kv_heads, hd)
        xv = (x @ w[p + "attention.wv.weight"].T).view(B, T, n_kv_heads, hd)
        xq, xk = apply_rotary_emb(xq, freqs_cis), apply_rotary_emb(xk, freqs_cis)
        keys, values, layer_mask = xk, xv, mask
        j = i - (n_layers - adapter_layer)
        adapted = prompts is not None and j >= 0
        K = adapter_len
        if adapted:
            prompt = prompts[j][None]  # [1, K, dim]
            ak = (prompt @ w[p + "attention.wk.weight"].T).view(1, K, n_kv_heads, hd).repeat(B, 1, 1, 1)
            av = (prompt @ w[p + "attention.wv.weight"].T).view(1, K, n_kv_heads, hd).repeat(B, 1, 1, 1)
            keys = torch.cat([ak, keys], dim=1)
            values = torch.cat([av, values], dim=1)
            layer_mask = torch.cat([torch.zeros(1, 1, T, K), mask], dim=-1)
        keys = keys.repeat_interleave(n_rep, dim=2)  # Meta's repeat_kv: head h reads kv head h // n_rep
        values = values.repeat_interleave(n_rep, dim=2)
        q, k, v = xq.transpose(1, 2), keys.transpose(1, 2), values.transpose(1, 2)
        scores = q @ k.transpose(2, 3) / math.sqrt(hd) + layer_mask
        if adapted:
            g = gates[i]
            g = torch.tanh(g) if gate_fn == "tanh" else g
            scores = torch.cat([g * F.softmax(scores[..., :K], dim=-1), F.softmax(scores[..., K:], dim=-1)], dim=-1)
        else:
            scores = F.softmax(scores, dim=-1)
        out = (scores @ v).transpose(1, 2).reshape(B, T, -1)
        h = h + out @ w[p + "attention.wo.weight"].T
        x = rms_norm(h, w[p + "ffn_norm.weight"], norm_eps)
        gate = x @ w[p + "feed_forward.w1.weight"].T
        up = x @ w[p + "feed_forward.w3.weight"].T
        h = h + (F.silu(gate) * up) @ w[p + "feed_forward.w2.weight"].T
    return rms_norm(h, w["norm.weight"], norm_eps) @ w["output.weight"].T
