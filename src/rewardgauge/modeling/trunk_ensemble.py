"""A reward-model ensemble that shares a trunk and gives each member its own top decoder block(s) and head.

    input_ids -> trunk (embeddings + the first L - n layers, run once) -> residual stream h [B, T, d]
              -> member k: its own copy of the last n layers, final norm and reward head -> r_k [B]

The trunk trains on every pair (it gets all members' gradients); member k's block and head train on its own
bootstrap subset and start from the pretrained top layer(s) plus per-member noise, so members share the
trunk's compute but are separate non-linear networks where the reward is read off. The members run as one
batched computation (parameters stacked along a leading K axis), not one pass per member.

Cost: a reward model reads one position, the last real token, so each member's *last* block needs its query,
attention output, MLP and head at that position only; at the other positions it needs just its keys and
values (two projections of d x d_kv per token, about 15 % of a tiny-Llama layer). Blocks below the last
(``n > 1``) run at every position. For the tiny Llama (4 layers, d = 128) and K = 5 one-block members, the
whole ensemble costs about 3 + 5 x 0.15 = 3.8 layers against one model's 4 (see bench/ensemble_quality.py).

Supported backbones: the Llama layout (Llama, Mistral, Qwen2: RMSNorm, rotary q/k, grouped-query attention,
gated MLP), read from the model's own modules; anything else raises ValueError (train.ensemble turns it into
an InputError). Saved as the truncated trunk's own folder (``save_pretrained``) plus ``MEMBERS_FILE``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers.activations import ACT2FN
from transformers.modeling_outputs import SequenceClassifierOutput

MEMBERS_FILE = "member_blocks.safetensors"
LLAMA_LAYOUT = ("llama", "mistral", "qwen2")
# Per-layer parameters, stacked [K, ...]; the biases exist where the backbone has them (Qwen2's q, k, v).
_LAYER_WEIGHTS = {"input_norm": "input_layernorm.weight", "q": "self_attn.q_proj.weight",
                  "k": "self_attn.k_proj.weight", "v": "self_attn.v_proj.weight", "o": "self_attn.o_proj.weight",
                  "post_norm": "post_attention_layernorm.weight", "gate": "mlp.gate_proj.weight",
                  "up": "mlp.up_proj.weight", "down": "mlp.down_proj.weight"}
_LAYER_BIASES = {"q_bias": "self_attn.q_proj.bias", "k_bias": "self_attn.k_proj.bias",
                 "v_bias": "self_attn.v_proj.bias", "o_bias": "self_attn.o_proj.bias",
                 "gate_bias": "mlp.gate_proj.bias", "up_bias": "mlp.up_proj.bias", "down_bias": "mlp.down_proj.bias"}


def check_layout(config) -> None:
    """ValueError unless the backbone has the Llama layout the member blocks re-implement."""
    if getattr(config, "model_type", None) not in LLAMA_LAYOUT:
        raise ValueError(f"member blocks need a Llama-style decoder ({', '.join(LLAMA_LAYOUT)}), got "
                         f"model_type {getattr(config, 'model_type', None)!r}")


def last_token_index(input_ids: torch.Tensor, pad_token_id: int | None,
                     attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """[B] the rightmost real token of each row (the rule of the HF decoder classifiers)."""
    real = attention_mask.bool() if attention_mask is not None else (
        input_ids != pad_token_id if pad_token_id is not None else torch.ones_like(input_ids, dtype=torch.bool))
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)
    return (positions * real).argmax(-1)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class TrunkEnsemble(torch.nn.Module):
    """A trunk (an HF decoder whose top ``n`` layers and final norm were removed) and K members, each a copy
    of those layers, the final norm and a linear reward head. ``forward`` returns ``logits`` [B, K].

    Quacks like an HF sequence-classification model for training and scoring (``config``, ``forward(input_ids,
    attention_mask=None)``, ``save_pretrained``).
    """

    def __init__(self, trunk: torch.nn.Module, members: int, layers: int):
        super().__init__()
        check_layout(trunk.config)
        self.trunk, self.k, self.n_layers = trunk, members, layers
        self.config = trunk.config
        c = self.config
        self.head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        self.n_heads, self.n_kv = c.num_attention_heads, c.num_key_value_heads
        self.eps, self.act = c.rms_norm_eps, ACT2FN[c.hidden_act]
        d, inner = c.hidden_size, c.intermediate_size
        q_out, kv_out = self.n_heads * self.head_dim, self.n_kv * self.head_dim
        shapes = {"input_norm": (d,), "q": (q_out, d), "k": (kv_out, d), "v": (kv_out, d), "o": (d, q_out),
                  "post_norm": (d,), "gate": (inner, d), "up": (inner, d), "down": (d, inner)}
        biases = {"q_bias": (q_out,), "k_bias": (kv_out,), "v_bias": (kv_out,)} if getattr(
            c, "attention_bias", False) or c.model_type == "qwen2" else {}
        if getattr(c, "attention_bias", False):
            biases["o_bias"] = (d,)
        if getattr(c, "mlp_bias", False):
            biases.update(gate_bias=(inner,), up_bias=(inner,), down_bias=(d,))
        self.blocks = torch.nn.ModuleList(torch.nn.ParameterDict(
            {name: torch.nn.Parameter(torch.zeros(members, *shape)) for name, shape in {**shapes, **biases}.items()})
            for _ in range(layers))
        self.final_norm = torch.nn.Parameter(torch.ones(members, d))
        self.head = torch.nn.Parameter(torch.zeros(members, d))

    # ---- building ----------------------------------------------------------------------------------------

    @classmethod
    def from_backbone(cls, backbone: torch.nn.Module, members: int, layers: int = 1, seeds: list[int] | None = None,
                      noise: float = 0.1) -> TrunkEnsemble:
        """Cut ``backbone`` (an HF decoder *base* model, e.g. ``LlamaModel``) below its top ``layers`` layers;
        each member starts from those layers and the final norm, every weight matrix perturbed by ``noise``
        times its own std with the member's seed, and a fresh head (normal, the config's initializer_range).
        Different starting points make members land in different solutions (the source of their diversity
        besides their data subsets)."""
        check_layout(backbone.config)
        total = len(backbone.layers)
        if not 1 <= layers < total:
            raise ValueError(f"member layers must be in [1, {total - 1}] for a {total}-layer model, got {layers}")
        seeds = list(range(members)) if seeds is None else list(seeds)
        if len(seeds) != members:
            raise ValueError(f"{members} members need {members} seeds, got {len(seeds)}")
        top, final_norm = list(backbone.layers[total - layers:]), backbone.norm.weight.detach().clone()
        backbone.layers = torch.nn.ModuleList(backbone.layers[:total - layers])
        backbone.norm = torch.nn.Identity()  # members need the residual stream, not its normalised form
        _set_layer_count(backbone.config, total - layers)
        model = cls(backbone, members, layers)
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        std = getattr(backbone.config, "initializer_range", 0.02)
        with torch.no_grad():
            for block, layer in zip(model.blocks, top):
                source = dict(layer.named_parameters())
                for name, param in block.items():
                    w = source[{**_LAYER_WEIGHTS, **_LAYER_BIASES}[name]].detach().float()
                    for m, g in enumerate(gens):
                        jitter = torch.randn(w.shape, generator=g) * (noise * w.std()) if w.dim() == 2 else 0.0
                        param[m] = w + jitter
            model.final_norm.copy_(final_norm.float().expand(members, -1))
            for m, g in enumerate(gens):
                model.head[m] = torch.randn(model.head.shape[1], generator=g) * std
        return model

    def save_pretrained(self, folder: str | os.PathLike, **kwargs) -> None:
        self.trunk.save_pretrained(folder, **kwargs)
        tensors = {"final_norm": self.final_norm, "head": self.head,
                   **{f"blocks.{i}.{name}": p for i, block in enumerate(self.blocks) for name, p in block.items()}}
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(Path(folder) / MEMBERS_FILE),
                  metadata={"members": str(self.k), "layers": str(self.n_layers)})

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, **kwargs) -> TrunkEnsemble:
        from transformers import AutoModel

        from rewardgauge.modeling.loading import quiet_transformers

        path = str(Path(folder) / MEMBERS_FILE)
        with safe_open(path, "pt") as f:
            meta = f.metadata() or {}
        with quiet_transformers():  # the trunk's unused final norm is not saved: "newly initialised" is expected
            trunk = AutoModel.from_pretrained(str(folder), **kwargs)
        trunk.norm = torch.nn.Identity()
        model = cls(trunk, int(meta["members"]), int(meta["layers"]))
        model.load_state_dict({**{f"trunk.{k}": v for k, v in trunk.state_dict().items()}, **load_file(path)})
        return model

    # ---- scoring -----------------------------------------------------------------------------------------

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                use_cache: bool | None = None, **kwargs) -> SequenceClassifierOutput:
        """[B, K] rewards: the trunk once, then every member's block(s) and head, batched over members."""
        h = self.trunk(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        t = input_ids.shape[1]
        cos, sin = self.trunk.rotary_emb(h, position_ids=torch.arange(t, device=h.device)[None])  # [1, T, hd]
        last = last_token_index(input_ids, self.config.pad_token_id, attention_mask)
        for block in self.blocks[:-1]:
            h = self._full_layer(block, h, cos, sin)
        final = self._last_token_layer(self.blocks[-1], h, last, cos, sin)  # [K, B, d]
        rewards = torch.einsum("kbd,kd->kb", _unit_rms(final, self.eps), self.head * self.final_norm)
        return SequenceClassifierOutput(logits=rewards.T)

    def _project(self, block, name: str, x: torch.Tensor, norm: str | None = None, shared: bool = False
                 ) -> torch.Tensor:
        """Member k's linear layer ``name`` on x: [K, B, ..., d_in], or with ``shared`` [B, ..., d_in] (the
        trunk's output, the same input for every member) -> [K, B, ..., d_out]. ``norm``: the RMSNorm weight
        applied to x first (x is then unit-RMS; the weight is folded into the matrix, so the members'
        normalised copies of a shared input never exist)."""
        w = block[name] if norm is None else block[name] * block[norm][:, None, :]
        y = torch.einsum("...i,koi->k...o" if shared else "k...i,koi->k...o", x, w)
        bias = block[f"{name}_bias"] if f"{name}_bias" in block else None
        if bias is not None:
            y = y + bias.view(bias.shape[0], *([1] * (y.dim() - 2)), bias.shape[-1])
        return y

    def _heads(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """[K, B, T, n * hd] -> [K, B, n, T, hd]."""
        k, b, t, _ = x.shape
        return x.view(k, b, t, n, self.head_dim).transpose(2, 3)

    def _keys_values(self, block, unit: torch.Tensor, cos, sin) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotated keys and values at every position, repeated to the query heads: [K, B, H, T, hd] each."""
        shared = unit.dim() == 3
        keys = self._heads(self._project(block, "k", unit, "input_norm", shared), self.n_kv)
        values = self._heads(self._project(block, "v", unit, "input_norm", shared), self.n_kv)
        keys = keys * cos[:, None] + _rotate_half(keys) * sin[:, None]
        rep = self.n_heads // self.n_kv
        if rep > 1:
            keys, values = keys.repeat_interleave(rep, dim=2), values.repeat_interleave(rep, dim=2)
        return keys, values

    def _mlp(self, block, x: torch.Tensor) -> torch.Tensor:
        unit = _unit_rms(x, self.eps)
        return self._project(block, "down", self.act(self._project(block, "gate", unit, "post_norm"))
                             * self._project(block, "up", unit, "post_norm"))

    def _full_layer(self, block, x: torch.Tensor, cos, sin) -> torch.Tensor:
        """One member decoder layer at every position (causal attention): [B, T, d] (the trunk's output) or
        [K, B, T, d] -> [K, B, T, d]."""
        unit = _unit_rms(x, self.eps)
        keys, values = self._keys_values(block, unit, cos, sin)
        query = self._heads(self._project(block, "q", unit, "input_norm", unit.dim() == 3), self.n_heads)
        query = query * cos[:, None] + _rotate_half(query) * sin[:, None]
        k, b, _, t, _ = query.shape
        attn = F.scaled_dot_product_attention(query.flatten(0, 1), keys.flatten(0, 1), values.flatten(0, 1),
                                              is_causal=True)
        x = x + self._project(block, "o", attn.view(k, b, self.n_heads, t, self.head_dim).transpose(2, 3)
                              .reshape(k, b, t, -1))
        return x + self._mlp(block, x)

    def _last_token_layer(self, block, x: torch.Tensor, last: torch.Tensor, cos, sin) -> torch.Tensor:
        """The top member layer at the last real token only: keys and values everywhere, the rest at one
        position. [B, T, d] or [K, B, T, d] -> [K, B, d]."""
        rows = torch.arange(last.shape[0], device=x.device)
        unit = _unit_rms(x, self.eps)
        keys, values = self._keys_values(block, unit, cos, sin)
        k, b, _, t, _ = keys.shape
        query = self._project(block, "q", unit[..., rows, last, :], "input_norm", x.dim() == 3)
        query = query.view(k, b, self.n_heads, -1)
        c, s = cos[0, last][:, None], sin[0, last][:, None]  # [B, 1, hd]
        query = query * c + _rotate_half(query) * s
        scores = torch.einsum("kbhd,kbhtd->kbht", query, keys) / self.head_dim ** 0.5
        future = torch.arange(t, device=x.device)[None] > last[:, None]  # [B, T]: causal, as at that position
        scores = scores.masked_fill(future[None, :, None], float("-inf"))
        attn = torch.einsum("kbht,kbhtd->kbhd", scores.softmax(-1), values).reshape(k, b, -1)
        here = x[..., rows, last, :] + self._project(block, "o", attn)  # [K, B, d]
        return here + self._mlp(block, here)


def _unit_rms(x: torch.Tensor, eps: float) -> torch.Tensor:
    """x / RMS(x) over the last axis, computed in float32 as Llama's RMSNorm does (its weight comes after)."""
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def _set_layer_count(config, layers: int) -> None:
    config.num_hidden_layers = layers
    if getattr(config, "layer_types", None):
        config.layer_types = list(config.layer_types)[:layers]
