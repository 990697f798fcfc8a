"""Model FLOPs of whatever a benchmark side runs, counted at every Llama backbone forward in the process.

Per real (non-padding) token: 2·N FLOPs for the matmuls of the N non-embedding backbone parameters, plus
4·d per layer per key it attends to (Q·Kᵀ and attention·V); a forward under autograd costs 3x that (the
backward pass is two more matmuls per matmul), so training counts 6·N per token as usual (Kaplan et al. 2020),
and generation or a reference pass without a graph 2·N. The heads (a one-output score, a ~200-word LM head)
are left out: a few percent at most here, the same on every side.

Each side's own layout is what is counted: a prompt that one side runs once and another twice counts once and
twice, and padding counts on neither. FLOP/s is then how hard a side keeps the matrix units busy with real
tokens, and its fraction of ``peak.matmul_peak_flops`` how far it is from the machine's limit.

The counter wraps ``LlamaModel.forward`` (both sides build that class, whatever trainer calls it), reading the
inputs each call gets: a 2D attention mask (keys: the mask up to each query, past tokens of a KV cache
included), a 4D block mask of packed rows (keys: the allowed entries of each query's row), or none (every key
up to the query; rows right-padded with the pad id).
"""

from __future__ import annotations

import functools
import inspect


class FlopCounter:
    """``total``: model FLOPs of the Llama forwards (and their backwards) run since ``install``."""

    def __init__(self):
        self.total = 0.0

    def install(self) -> FlopCounter:
        from transformers import LlamaModel

        forward = LlamaModel.forward
        signature = inspect.signature(forward)

        @functools.wraps(forward)
        def counted(model, *args, **kwargs):
            self.total += forward_flops(model, signature.bind(model, *args, **kwargs).arguments)
            return forward(model, *args, **kwargs)

        LlamaModel.forward = counted
        return self


def _trailing_padding(ids, pad_id, positions=None):
    """True on the run of pad ids at the end of each row (a packed row's padding also sits at position 0)."""
    import torch

    pad = ids == pad_id
    if positions is not None:
        pad &= positions == 0
    return torch.flip(torch.cumprod(torch.flip(pad.long(), [-1]), -1), [-1]).bool()


def forward_flops(model, inputs: dict) -> float:
    """FLOPs of one ``LlamaModel`` forward on ``inputs`` (its bound arguments), times 3 under autograd."""
    import torch

    config = model.config
    ids, embeds = inputs.get("input_ids"), inputs.get("inputs_embeds")
    shape = ids.shape if ids is not None else embeds.shape[:2]
    n, t = shape[0], shape[1]
    mask, positions = inputs.get("attention_mask"), inputs.get("position_ids")
    cache = inputs.get("cache", inputs.get("past_key_values"))
    past = cache.get_seq_length() if cache is not None and hasattr(cache, "get_seq_length") else 0
    if isinstance(mask, torch.Tensor) and mask.dim() == 4:
        allowed = mask[:, 0] if mask.dtype == torch.bool else mask[:, 0] == 0
        keys = allowed.sum(-1)
        real = ~_trailing_padding(ids, config.pad_token_id, positions) if ids is not None else torch.ones_like(keys, dtype=torch.bool)
    elif isinstance(mask, torch.Tensor):
        keys = mask.long().cumsum(-1)[:, -t:]
        real = mask[:, -t:].bool()
    else:
        keys = past + torch.arange(1, t + 1).expand(n, t)
        real = (~_trailing_padding(ids, config.pad_token_id) if ids is not None and config.pad_token_id is not None
                else torch.ones(n, t, dtype=torch.bool))
    tokens = int(real.sum())
    attended = int((keys * real).sum())
    params = sum(p.numel() for p in model.parameters()) - model.embed_tokens.weight.numel()
    forward = 2 * params * tokens + 4 * config.num_hidden_layers * config.hidden_size * attended
    return float(forward * (3 if torch.is_grad_enabled() else 1))


def flops_fields(results: dict[str, dict], sides, peak: float) -> dict:
    """The JSON fields of each side's model FLOP/s (``flops_per_s`` in its result) and fraction of ``peak``."""
    fields = {"peak_gflops": round(peak / 1e9, 2)}
    for side in sides:
        rate = results[side]["flops_per_s"]
        fields[f"{side}_gflops"] = round(rate / 1e9, 3)
        fields[f"{side}_flops_fraction_of_peak"] = round(rate / peak, 4)
    return fields
