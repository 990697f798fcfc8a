"""A lean one-token decoding step for Llama-architecture models, used by ``generation.generate``.

For the small models of the lab, a decoding step costs more in per-operation overhead than in arithmetic:
Hugging Face's Llama layer runs about forty tensor operations and module calls per token, and its cache grows
by concatenation (a copy of every key and value at every step). This module runs the same arithmetic with the
query, key and value projections fused into one matrix product, the gate and up projections into another, and
keys and values written in place into a cache allocated once for the whole response. Its logits match the
model's own forward to float rounding (a test compares them), and any model it does not cover exactly
(biases, sliding windows, other attention or rope variants) keeps the Hugging Face path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def supports(model: torch.nn.Module) -> bool:
    """True for a plain Llama (no biases, no sliding window, SiLU MLP, default rope) in eval-style use."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "model_type", None) != "llama":
        return False
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    return (not getattr(config, "attention_bias", False) and not getattr(config, "mlp_bias", False)
            and getattr(config, "hidden_act", "silu") == "silu" and rope.get("rope_type", "default") == "default"
            and getattr(config, "pretraining_tp", 1) == 1 and hasattr(model, "model") and hasattr(model, "lm_head"))


class FastDecoder:
    """Decoding steps for one ``generate`` call: fused weights (taken from the live model, so they are
    current) and a key/value cache of ``capacity`` positions filled from the prefill's cache."""

    def __init__(self, model: torch.nn.Module, cache, prompt_mask: torch.Tensor, capacity: int):
        inner, config = model.model, model.config
        self.model = model
        self.heads, self.kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.eps = config.rms_norm_eps
        self.layers = []
        for layer in inner.layers:
            attn, mlp = layer.self_attn, layer.mlp
            self.layers.append((
                layer.input_layernorm.weight.float(),
                torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]),
                attn.o_proj.weight,
                layer.post_attention_layernorm.weight.float(),
                torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]),
                mlp.down_proj.weight,
            ))
        self.embed, self.norm, self.head = inner.embed_tokens.weight, inner.norm.weight.float(), model.lm_head.weight
        n, length = prompt_mask.shape
        # cos / sin of every position a response can reach, from the model's own rotary module, once.
        positions = torch.arange(length + capacity, device=prompt_mask.device)[None]
        cos, sin = inner.rotary_emb(self.embed[:1][None], positions)
        # rotate_half(x) * sin == roll(x, d/2) * [-sin_1, sin_2]: one roll instead of two slices, neg, cat.
        half = self.head_dim // 2
        self.cos, self.sin = cos[0], torch.cat([-sin[0, :, :half], sin[0, :, half:]], dim=-1)
        self.scale = getattr(model.model.layers[0].self_attn, "scaling", self.head_dim ** -0.5)
        first = cache.layers[0].keys
        shape = (len(self.layers), n, self.kv_heads, length + capacity, self.head_dim)
        self.keys = first.new_empty(shape)
        self.values = first.new_empty(shape)
        for i, layer in enumerate(cache.layers):
            self.keys[i, :, :, :length] = layer.keys
            self.values[i, :, :, :length] = layer.values
        self.length = length
        self.mask = torch.zeros(n, length + capacity, dtype=torch.bool, device=prompt_mask.device)
        self.mask[:, :length] = prompt_mask.bool()

    def select(self, rows: torch.Tensor) -> None:
        """Keep only these rows of the batch (finished responses leave it)."""
        self.keys, self.values, self.mask = self.keys[:, rows], self.values[:, rows], self.mask[rows]

    def _rms(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        # As LlamaRMSNorm: in float32 (the weights are kept in float32), then back to the activation dtype.
        if x.dtype == torch.float32:
            return F.rms_norm(x, weight.shape, weight, self.eps)
        return (weight * F.rms_norm(x.float(), weight.shape, None, self.eps)).to(x.dtype)

    def step(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Logits [n, V] of the next token after ``tokens`` [n] at ``positions`` [n]."""
        n, h, kvh, d = tokens.shape[0], self.heads, self.kv_heads, self.head_dim
        x = F.embedding(tokens, self.embed)  # [n, hidden]
        cos, sin = self.cos[positions][:, None], self.sin[positions][:, None]  # [n, 1, d]
        t = self.length
        self.mask[:, t] = True
        # Attention of one query is two small matrix products; SDPA's kernels cost more to launch here.
        masked = ~self.mask[:, None, None, :t + 1]
        for i, (norm1, wqkv, wo, norm2, wgu, wdown) in enumerate(self.layers):
            qkv = F.linear(self._rms(x, norm1), wqkv).view(n, h + 2 * kvh, d)
            qk = qkv[:, :h + kvh]  # rotary on queries and keys at once
            qk = qk * cos + qk.roll(d // 2, dims=-1) * sin
            self.keys[i, :, :, t] = qk[:, h:]
            self.values[i, :, :, t] = qkv[:, h + kvh:]
            keys, values = self.keys[i, :, :, :t + 1], self.values[i, :, :, :t + 1]
            if kvh != h:
                keys, values = keys.repeat_interleave(h // kvh, dim=1), values.repeat_interleave(h // kvh, dim=1)
            scores = torch.matmul(qk[:, :h, None], keys.transpose(-1, -2)).mul_(self.scale)
            attn = torch.matmul(scores.masked_fill_(masked, float("-inf")).softmax(-1), values)
            x = x + F.linear(attn.reshape(n, h * d), wo)
            gate, up = F.linear(self._rms(x, norm2), wgu).chunk(2, dim=-1)
            x = x + F.linear(F.silu(gate) * up, wdown)
        self.length = t + 1
        return F.linear(self._rms(x, self.norm), self.head)
