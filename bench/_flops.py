"""Model FLOPs of whatever a benchmark side runs, counted at every Llama backbone forward in the process.

Per real (non-padding) token: 2·in·out FLOPs for each Linear of the backbone that runs on it (2·N for N
non-embedding backbone parameters when every Linear does), plus 4·d per layer per key it attends to (Q·Kᵀ and
attention·V); a forward under autograd costs 3x that (the backward pass is two more matmuls per matmul), so
training counts 6·N per token as usual (Kaplan et al. 2020), and generation or a reference pass without a graph
2·N. A Linear run at some positions only (ours runs the last layer's query-side parts where rewards are read)
counts the rows it computed. The heads (a one-output score, a ~200-word LM head) are left out: a few percent at
most here, the same on every side.

Each side's own layout is what is counted: a prompt that one side runs once and another twice counts once and
twice, and padding counts on neither. FLOP/s is then how hard a side keeps the matrix units busy with real
tokens, and its fraction of ``peak.matmul_peak_flops`` how far it is from the machine's limit.

The counter wraps ``LlamaModel.forward`` (both sides build that class, whatever trainer calls it) and counts
the Linear modules called inside it (a global forward hook), reading the inputs each call gets: a 2D attention mask (keys: the mask up to each query, past tokens of a KV cache
included), a 4D block mask of packed rows (keys: the allowed entries of each query's row), or none (every key
up to the query; rows right-padded with the pad id). Our decoding steps, which skip ``LlamaModel``
(``modeling.fast_decode``), are counted at ``FastDecoder.step`` the same way.
"""

from __future__ import annotations

import functools
import inspect
import math


class FlopCounter:
    """``total``: model FLOPs of the Llama forwards (and their backwards) run since ``install``."""

    def __init__(self):
        self.total = 0.0
        self._call: dict | None = None  # the Llama forward running now: its [n, t] shape, real tokens, FLOPs

    def install(self) -> FlopCounter:
        import torch
        from transformers import LlamaModel

        forward = LlamaModel.forward
        signature = inspect.signature(forward)

        @functools.wraps(forward)
        def counted(model, *args, **kwargs):
            shape, tokens, attention = real_tokens(model, signature.bind(model, *args, **kwargs).arguments)
            self._call = {"shape": shape, "tokens": tokens, "flops": attention}
            try:
                out = forward(model, *args, **kwargs)
            finally:
                call, self._call = self._call, None
            self.total += call["flops"] * (3 if torch.is_grad_enabled() else 1)
            return out

        LlamaModel.forward = counted
        torch.nn.modules.module.register_module_forward_hook(self._count_linear)
        self._count_fast_decoding()
        return self

    def _count_fast_decoding(self) -> None:
        """Our generation decodes plain Llamas with ``modeling.fast_decode`` (fused weights, no LlamaModel call):
        per step, 2 FLOPs per weight of the backbone's projections for each live row, plus its attention."""
        from rewardgauge.modeling.fast_decode import FastDecoder

        step = FastDecoder.step

        @functools.wraps(step)
        def counted(decoder, tokens, positions):
            logits = step(decoder, tokens, positions)
            weights = sum(w.numel() for _, wqkv, wo, _, wgu, wdown in decoder.layers for w in (wqkv, wo, wgu, wdown))
            attended = int(decoder.mask[:, :decoder.length].sum())
            hidden = decoder.heads * decoder.head_dim
            self.total += 2 * weights * tokens.shape[0] + 4 * len(decoder.layers) * hidden * attended
            return logits

        FastDecoder.step = counted

    def _count_linear(self, module, args, output) -> None:
        """2·in·out per row a Linear inside the running Llama forward computes: the real tokens when it runs on
        every position, else the rows it was given, or, for one whose forward was replaced to run at some
        positions only, the rows of its output that are not zeros."""
        import torch

        if self._call is None or not isinstance(module, torch.nn.Linear):
            return
        lead = tuple(args[0].shape[:-1])
        if "forward" in vars(module):  # run at some positions only, zeros elsewhere (modeling.reward_forward)
            rows = int(output.flatten(0, -2).ne(0).any(-1).sum())
        else:
            rows = self._call["tokens"] if lead == self._call["shape"] else math.prod(lead)
        self._call["flops"] += 2 * module.in_features * module.out_features * rows


def _trailing_padding(ids, pad_id, positions=None):
    """True on the run of pad ids at the end of each row (a packed row's padding also sits at position 0)."""
    import torch

    pad = ids == pad_id
    if positions is not None:
        pad &= positions == 0
    return torch.flip(torch.cumprod(torch.flip(pad.long(), [-1]), -1), [-1]).bool()


def real_tokens(model, inputs: dict) -> tuple[tuple[int, int], int, float]:
    """For one ``LlamaModel`` forward on ``inputs`` (its bound arguments): the [n, t] shape of its positions, how
    many are real tokens, and the forward FLOPs of their attention (4·d per layer per key attended)."""
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
        real = (~_trailing_padding(ids, config.pad_token_id, positions) if ids is not None
                else torch.ones_like(keys, dtype=torch.bool))
    elif isinstance(mask, torch.Tensor):
        keys = mask.long().cumsum(-1)[:, -t:]
        real = mask[:, -t:].bool()
    else:
        keys = past + torch.arange(1, t + 1).expand(n, t)
        real = (~_trailing_padding(ids, config.pad_token_id) if ids is not None and config.pad_token_id is not None
                else torch.ones(n, t, dtype=torch.bool))
    attended = int((keys * real).sum())
    return (n, t), int(real.sum()), float(4 * config.num_hidden_layers * config.hidden_size * attended)


def flops_fields(results: dict[str, dict], sides, peak: float) -> dict:
    """The JSON fields of each side's model FLOP/s (``flops_per_s`` in its result) and fraction of ``peak``."""
    fields = {"peak_gflops": round(peak / 1e9, 2)}
    for side in sides:
        rate = results[side]["flops_per_s"]
        fields[f"{side}_gflops"] = round(rate / 1e9, 3)
        fields[f"{side}_flops_fraction_of_peak"] = round(rate / peak, 4)
    return fields
