"""Per-token log-probabilities (and other per-position outputs) of responses to prompts, in one forward.

A GRPO batch holds B prompts and G responses to each. ``response_logprobs`` gives log π(y_t | x, y_<t) for
every response token, for the policy (with gradients, for the loss) or under ``torch.no_grad`` (old policy,
reference). Three layouts compute exactly the same numbers (to float rounding), with different work:

  packed  (default) one row per prompt: the prompt once, then its G responses, without padding between
          them; an attention mask lets each response see its own prompt and its own earlier tokens, and
          position ids restart per response. This is the Prefix Grouper forward (Liu et al. 2025, arXiv
          2506.05433): the prompt's keys and values serve all G responses, and only the rows' ends are padded.
  shared  the prompts as one batch, then the responses as another batch on the prompts' KV cache (repeated
          to the G responses, not recomputed). Works for any model with a cache, also reward models with a
          pooling head (e.g. chosen and rejected sharing their prompt, ``shared_prefix_forward``).
  plain   prompt + response as one padded row per response: the prompt is computed G times.

Gradients flow into the prompt's computation from every response in the first two, so the loss and its
gradients are those of the plain forward; tests compare all three.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch

from rewardgauge.modeling.generation import cache_keyword, output_cache, positions_from_mask

Layout = Literal["packed", "shared", "plain"]
LAYOUTS: tuple[str, ...] = get_args(Layout)


def shared_prefix_forward(model: torch.nn.Module, prefix_ids: torch.Tensor, prefix_mask: torch.Tensor,
                          suffix_ids: torch.Tensor, suffix_mask: torch.Tensor, repeats: int | torch.Tensor, *,
                          prefix_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> tuple[Any, Any]:
    """Run [B, P] left-padded prefixes once and [M, S] right-padded suffixes on their cached keys and values;
    returns the model's two outputs (prefix, suffix). ``repeats``: K, each prefix's K consecutive suffixes
    (M = B·K), or a tensor [M] naming each suffix's prefix row. Gradients flow into the prefix's computation
    from every suffix. ``kwargs`` go to both calls, ``prefix_kwargs`` to the prefix's only (e.g.
    ``logits_to_keep=1`` when only the prefix's last position matters)."""
    prefix_out = model(input_ids=prefix_ids, attention_mask=prefix_mask, position_ids=positions_from_mask(prefix_mask),
                       use_cache=True, **kwargs, **(prefix_kwargs or {}))
    cache = output_cache(prefix_out)
    if isinstance(repeats, torch.Tensor):
        cache.batch_select_indices(repeats)
        prefix_mask = prefix_mask[repeats]
    elif repeats > 1:
        cache.batch_repeat_interleave(repeats)
        prefix_mask = prefix_mask.repeat_interleave(repeats, dim=0)
    suffix_positions = positions_from_mask(suffix_mask, offset=prefix_mask.sum(-1))
    suffix_out = model(input_ids=suffix_ids, attention_mask=torch.cat([prefix_mask, suffix_mask], dim=1),
                       position_ids=suffix_positions, use_cache=True, **{cache_keyword(model): cache}, **kwargs)
    return prefix_out, suffix_out


@dataclass
class ResponseLogprobs:
    """[N, R] per-token log-probabilities of the response tokens (0 at padding) and, if asked, the entropy of
    the next-token distribution at each response position."""

    logprobs: torch.Tensor
    entropy: torch.Tensor | None = None


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log softmax(logits / T)[token] for [N, T, V] logits and [N, T] tokens, in float32 or wider."""
    logits = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    if temperature != 1.0:
        logits = logits / temperature
    return torch.gather(logits.log_softmax(-1), -1, tokens[..., None]).squeeze(-1)


def token_entropy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """H = -Σ_v p_v log p_v of softmax(logits / T), per position: [N, T, V] -> [N, T]."""
    logits = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    if temperature != 1.0:
        logits = logits / temperature
    logp = logits.log_softmax(-1)
    return -(logp.exp() * logp).sum(-1)


@dataclass
class Packed:
    """Prompts and their responses laid out in rows without padding between them (see the module docstring).

    ids, positions [rows, T] (right-padded rows); mask [rows, 1, T, T] (True: may attend); predict [K]: for each
    of the K real response tokens (row-major over the [N, R] responses), the flat index (row · T + column) of
    the position whose output predicts it; prompt_start [B] and response_start [N]: the flat index of each
    prompt's and each response's first token.
    """

    ids: torch.Tensor
    positions: torch.Tensor
    mask: torch.Tensor
    predict: torch.Tensor
    prompt_start: torch.Tensor
    response_start: torch.Tensor


def pack(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, response_ids: torch.Tensor,
         response_mask: torch.Tensor, index: torch.Tensor, pad_id: int = 0, rows: torch.Tensor | None = None) -> Packed:
    """Lay out [B, P] left-padded prompts and [N, R] right-padded responses (response n answers prompt
    ``index[n]``) in rows: a group is prompt b, then its responses in order; the rows are padded to the longest.

    ``rows`` [B] puts group b in row ``rows[b]`` (default: one row per group). Groups that share a row follow
    each other in prompt order and see nothing of each other (a block-diagonal mask, positions restarting at
    each group): several short groups fill one row instead of each padding its own to the longest.
    """
    device = prompt_ids.device
    b, n = prompt_ids.shape[0], response_ids.shape[0]
    p_len, r_len = prompt_mask.sum(-1), response_mask.sum(-1)
    rows = torch.arange(b, device=device) if rows is None else rows.to(device)
    n_rows = int(rows.max()) + 1 if b else 0
    # Column where each group starts in its row: after the groups placed in that row before it.
    group_total = torch.zeros(b, dtype=torch.long, device=device).index_add_(0, index, r_len)
    group_len = p_len + group_total
    by_row = torch.argsort(rows, stable=True)
    row_total = torch.zeros(n_rows, dtype=torch.long, device=device).index_add_(0, rows, group_len)
    row_base = torch.cumsum(row_total, 0) - row_total
    group_col = torch.empty_like(group_len)
    group_col[by_row] = torch.cumsum(group_len[by_row], 0) - group_len[by_row] - row_base[rows[by_row]]
    # Column where each response starts: after its prompt and the earlier responses to it.
    group_start = torch.cumsum(group_total, 0) - group_total
    order = torch.argsort(index, stable=True)
    before = torch.cumsum(r_len[order], 0) - r_len[order] - group_start[index[order]]
    col_start = torch.empty_like(r_len)
    col_start[order] = group_col[index[order]] + p_len[index[order]] + before
    width = int(row_total.max()) if b else 0
    # Every real token's (row, column) and, for responses, which response it is.
    p_group = torch.arange(b, device=device).repeat_interleave(p_len)
    p_offset = torch.arange(len(p_group), device=device) - (torch.cumsum(p_len, 0) - p_len).repeat_interleave(p_len)
    p_rows, p_cols = rows[p_group], group_col[p_group] + p_offset
    r_real = response_mask.bool()
    r_which = torch.arange(n, device=device)[:, None].expand_as(response_ids)[r_real]
    r_offset = torch.arange(response_ids.shape[1], device=device)[None].expand_as(response_ids)[r_real]
    r_group = index[r_which]
    r_rows, r_cols = rows[r_group], col_start[r_which] + r_offset
    ids = torch.full((n_rows, width), pad_id, dtype=prompt_ids.dtype, device=device)
    positions = torch.zeros((n_rows, width), dtype=torch.long, device=device)
    # seq: n for response n, N + b for prompt b, -1 for padding; owner: the prompt label of a token's group.
    seq = torch.full((n_rows, width), -1, dtype=torch.long, device=device)
    owner = torch.full((n_rows, width), -1, dtype=torch.long, device=device)
    ids[p_rows, p_cols], positions[p_rows, p_cols] = prompt_ids[prompt_mask.bool()], p_offset
    seq[p_rows, p_cols] = owner[p_rows, p_cols] = n + p_group
    ids[r_rows, r_cols] = response_ids[r_real]
    positions[r_rows, r_cols] = p_len[r_group] + r_offset
    seq[r_rows, r_cols], owner[r_rows, r_cols] = r_which, n + r_group
    causal = torch.ones(width, width, dtype=torch.bool, device=device).tril()
    # A token sees its own sequence and its group's prompt, causally; padding sees earlier padding only.
    mask = causal & ((seq[:, :, None] == seq[:, None, :]) | (seq[:, None, :] == owner[:, :, None]))
    prompt_start = rows * width + group_col
    prev = torch.where(r_offset == 0, prompt_start[r_group] + p_len[r_group] - 1, r_rows * width + r_cols - 1)
    return Packed(ids, positions, mask[:, None], prev, prompt_start, rows[index] * width + col_start)


def _index(group_size: int | torch.Tensor, n: int, device) -> torch.Tensor:
    if isinstance(group_size, torch.Tensor):
        return group_size
    return torch.arange(n, device=device) // group_size


def packed_outputs(model: torch.nn.Module, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor,
                   response_ids: torch.Tensor, response_mask: torch.Tensor,
                   group_size: int | torch.Tensor = 1) -> torch.Tensor:
    """[K, C] outputs of ``model`` at the positions that predict the K real response tokens (row-major over
    [N, R]), from the packed layout."""
    index = _index(group_size, response_ids.shape[0], response_ids.device)
    packed = pack(prompt_ids, prompt_mask, response_ids, response_mask, index)
    out = model(input_ids=packed.ids, attention_mask=packed.mask, position_ids=packed.positions, use_cache=False)
    return out.logits.flatten(0, 1)[packed.predict]


def response_position_logits(model: torch.nn.Module, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor,
                            response_ids: torch.Tensor, response_mask: torch.Tensor,
                            group_size: int | torch.Tensor = 1, *, layout: Layout = "packed") -> torch.Tensor:
    """[N, R, C] outputs of ``model`` at the positions that predict each response token: the prompt's last
    position for token 0, response position t-1 for token t (0 at padding). C is the vocabulary for a causal
    LM, 1 for a value model. [B, P] left-padded prompts, [N, R] right-padded responses: ``group_size`` G
    consecutive rows per prompt (N = B·G), or a tensor [N] naming each response's prompt row."""
    if layout == "packed":
        flat = packed_outputs(model, prompt_ids, prompt_mask, response_ids, response_mask, group_size)
        out = flat.new_zeros(*response_ids.shape, flat.shape[-1])
        out[response_mask.bool()] = flat
        return out
    keep_last = {"logits_to_keep": 1} if _takes(model, "logits_to_keep") else {}
    if layout == "shared":
        prompt_out, response_out = shared_prefix_forward(model, prompt_ids, prompt_mask, response_ids,
                                                         response_mask, group_size, prefix_kwargs=keep_last)
        last = prompt_out.logits[:, -1:]
        first = last[group_size] if isinstance(group_size, torch.Tensor) else last.repeat_interleave(group_size, dim=0)
        return torch.cat([first, response_out.logits[:, :-1]], dim=1)
    if layout != "plain":
        raise ValueError(f"unknown layout {layout!r} (known: {', '.join(LAYOUTS)})")
    if isinstance(group_size, torch.Tensor):
        prompt_ids, prompt_mask = prompt_ids[group_size], prompt_mask[group_size]
    elif group_size > 1:
        prompt_ids = prompt_ids.repeat_interleave(group_size, dim=0)
        prompt_mask = prompt_mask.repeat_interleave(group_size, dim=0)
    ids = torch.cat([prompt_ids, response_ids], dim=1)
    mask = torch.cat([prompt_mask, response_mask], dim=1)
    width = response_ids.shape[1]
    # Only positions P-1 .. P+R-2 predict response tokens: a causal LM's head runs on the last R+1 only.
    keep = {"logits_to_keep": width + 1} if keep_last else {}
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions_from_mask(mask), use_cache=False, **keep)
    return out.logits[:, -width - 1:-1]


def response_logprobs(model: torch.nn.Module, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor,
                      response_ids: torch.Tensor, response_mask: torch.Tensor, group_size: int | torch.Tensor = 1, *,
                      layout: Layout = "packed", temperature: float = 1.0,
                      with_entropy: bool = False) -> ResponseLogprobs:
    """log π(y_t | x, y_<t) of each response token ([N, R], 0 at padding), and the entropy of each
    position's next-token distribution if asked (a metric, without gradient); see the module docstring for
    the layouts."""
    real = response_mask.bool()
    if layout == "packed":  # only the real tokens' logits exist: no [N, R, V] tensor
        logits = packed_outputs(model, prompt_ids, prompt_mask, response_ids, response_mask, group_size)
        flat = token_logprobs(logits, response_ids[real], temperature)
        logprobs = flat.new_zeros(response_ids.shape).masked_scatter(real, flat)
        entropy = None
        if with_entropy:  # a metric: no gradient needed
            with torch.no_grad():
                flat = token_entropy(logits, temperature)
            entropy = flat.new_zeros(response_ids.shape).masked_scatter(real, flat)
        return ResponseLogprobs(logprobs, entropy)
    logits = response_position_logits(model, prompt_ids, prompt_mask, response_ids, response_mask, group_size,
                                      layout=layout)
    mask = real.to(logits.dtype if logits.is_floating_point() else torch.float32)
    logprobs = token_logprobs(logits, response_ids, temperature) * mask
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = token_entropy(logits, temperature) * mask
    return ResponseLogprobs(logprobs, entropy)


def _takes(model: torch.nn.Module, name: str) -> bool:
    inner = getattr(model, "module", model)  # a DDP wrapper's forward takes **kwargs
    return name in inspect.signature(inner.forward).parameters
