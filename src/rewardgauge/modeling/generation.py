"""Batched sampling from a causal LM with a KV cache, written for small models on a CPU.

``generate`` prefills the left-padded prompts once, then decodes one token per step for every row still
running, with temperature / top-k / top-p sampling from a seeded ``torch.Generator`` (the same seed gives the
same samples). Rows stop at an EOS token or after ``max_new_tokens``. For a GRPO group of G samples per prompt
the prompt is prefilled once and its cache is repeated to G rows (not recomputed); finished rows leave the
batch (and the cache) once they are a quarter of it. Decoding steps of a plain Llama run through
``modeling.fast_decode`` (fused projections, a preallocated cache: the same logits with fewer operations),
other models through their own forward.

Position ids follow the attention mask (the first real token of a left-padded prompt is position 0), as
Hugging Face ``generate`` does, so greedy decoding here gives the same tokens as ``model.generate``.

``GenerationBackend`` is the interface the RL recipe samples through; ``TorchBackend`` (this module) samples
from the live policy in the training process. A vLLM engine can serve the same interface on GPUs as an
optional extra: ``generate`` maps to ``LLM.generate`` with ``SamplingParams(n=G, ...)`` on token-id prompts,
returning the same ``Generation`` tensors, and ``sync_weights`` loads the policy's state dict into the engine
after each optimizer step (as TRL's colocated mode does). It is not part of this package yet: vLLM pulls a
CUDA torch and cannot be installed or tested on the CPU machines this project runs on.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. ``temperature`` 0 is greedy decoding; ``top_k`` 0 and ``top_p`` 1 switch those off."""

    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.top_k < 0:
            raise ValueError(f"need temperature >= 0, 0 < top_p <= 1, top_k >= 0; got {self.temperature}, "
                             f"{self.top_p}, {self.top_k}")


@dataclass
class Generation:
    """B prompts and their N = B·G sampled responses; the G responses of prompt b are rows b·G .. b·G+G-1.

    prompt_ids, prompt_mask:      [B, P] left-padded prompts
    response_ids, response_mask:  [N, R] right-padded responses (the EOS that ended one is part of it)
    finished:                     [N] True where the response ended with EOS (False: cut at max_new_tokens)
    """

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    response_ids: torch.Tensor
    response_mask: torch.Tensor
    finished: torch.Tensor
    group_size: int = 1

    @property
    def response_lengths(self) -> torch.Tensor:
        return self.response_mask.sum(-1)

    def response_token_lists(self) -> list[list[int]]:
        """Each response's tokens without padding (and with its EOS, if it has one)."""
        return [row[:n].tolist() for row, n in zip(self.response_ids, self.response_lengths.tolist())]


class GenerationBackend(Protocol):
    """Samples G responses to each prompt. The RL recipe calls ``sync_weights`` after each optimizer step."""

    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams, group_size: int = 1,
                 seed: int = 0) -> Generation: ...

    def sync_weights(self, model: torch.nn.Module) -> None: ...


class TorchBackend:
    """``generate`` on the live policy in this process: nothing to synchronise."""

    def __init__(self, model: torch.nn.Module, eos_token_ids: Sequence[int], pad_token_id: int):
        self.model, self.eos_token_ids, self.pad_token_id = model, list(eos_token_ids), pad_token_id

    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams, group_size: int = 1,
                 seed: int = 0) -> Generation:
        generator = torch.Generator(device=_device(self.model)).manual_seed(seed)
        return generate(self.model, prompts, params, eos_token_ids=self.eos_token_ids,
                        pad_token_id=self.pad_token_id, group_size=group_size, generator=generator)

    def sync_weights(self, model: torch.nn.Module) -> None:
        self.model = model


def cache_keyword(model: torch.nn.Module) -> str:
    """The name of the KV-cache argument of ``model.forward``: ``cache`` (transformers >= 5.?) or the older
    ``past_key_values`` (a deprecated alias in new versions that warns on every call)."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def output_cache(outputs):
    return outputs.cache if getattr(outputs, "cache", None) is not None else outputs.past_key_values


def positions_from_mask(mask: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
    """Position ids of a padded batch: each row counts its real tokens from 0 (or from ``offset`` [B])."""
    positions = (mask.long().cumsum(-1) - 1).clamp_min(0)
    return positions if offset is None else positions + offset[:, None]


def eos_token_ids_of(tokenizer, model: torch.nn.Module | None = None) -> list[int]:
    """Every id that ends a response: the tokenizer's EOS and those of the model's generation config."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    gen = getattr(model, "generation_config", None)
    extra = getattr(gen, "eos_token_id", None)
    ids.update([extra] if isinstance(extra, int) else (extra or []))
    if not ids:
        raise ValueError("the tokenizer has no EOS token: responses could not end")
    return sorted(ids)


def sample_next(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None) -> torch.Tensor:
    """One token per row from [N, V] logits: argmax at temperature 0, else softmax(logits / T) restricted to
    the top-k tokens and to the smallest set whose probability reaches top_p (Holtzman et al. 2020)."""
    if params.temperature == 0:
        return logits.argmax(-1)
    logits = logits.float() / params.temperature
    if params.top_k and params.top_k < logits.shape[-1]:
        kth = torch.topk(logits, params.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if params.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        # drop a token when the tokens before it already reach top_p (the most likely one always stays)
        drop_sorted = cumulative - sorted_logits.softmax(-1) >= params.top_p
        logits = logits.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), float("-inf"))
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)


def generate(model: torch.nn.Module, prompts: Sequence[Sequence[int]], params: SamplingParams, *,
             eos_token_ids: Sequence[int], pad_token_id: int, group_size: int = 1,
             generator: torch.Generator | None = None, share_prefill: bool = True,
             fast: bool = True) -> Generation:
    """Sample ``group_size`` responses to each prompt (token id lists); see the module docstring.

    ``share_prefill=False`` repeats each prompt G times before the prefill instead of repeating its cache:
    the same samples for the same generator (a reference for tests and benchmarks), G times the prefill work.
    ``fast``: decode with ``modeling.fast_decode`` where it covers the model (plain Llama), else (or with
    False) with the model's own forward.
    """
    from rewardgauge.modeling.formatting import pad

    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    if group_size < 1:
        raise ValueError(f"group_size must be at least 1, got {group_size}")
    device = _device(model)
    was_training = model.training
    model.eval()
    prompt_ids, prompt_mask = pad(prompts, pad_token_id, side="left")
    prompt_ids, prompt_mask = prompt_ids.to(device), prompt_mask.to(device)
    try:
        # inference_mode: less bookkeeping per operation than no_grad; the token ids are cloned out of it,
        # as the training forward uses them.
        with torch.inference_mode():
            response_ids, finished = _decode(model, prompt_ids, prompt_mask, params, torch.tensor(list(eos_token_ids)),
                                             pad_token_id, group_size, generator, share_prefill, fast)
        response_ids, finished = response_ids.clone(), finished.clone()
    finally:
        model.train(was_training)
    response_mask = _response_mask(response_ids, torch.tensor(list(eos_token_ids), device=device))
    return Generation(prompt_ids, prompt_mask, response_ids, response_mask, finished, group_size)


def _decode(model, prompt_ids, prompt_mask, params, eos, pad_token_id, group_size, generator, share_prefill, fast):
    """The decoding loop; returns ([N, R] response ids padded with ``pad_token_id``, [N] finished)."""
    from rewardgauge.modeling import fast_decode

    key = cache_keyword(model)
    device = prompt_ids.device
    eos = eos.to(device)
    if not share_prefill and group_size > 1:
        prompt_ids = prompt_ids.repeat_interleave(group_size, dim=0)
        prompt_mask = prompt_mask.repeat_interleave(group_size, dim=0)
    out = model(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=positions_from_mask(prompt_mask),
                use_cache=True, logits_to_keep=1)
    cache, logits = output_cache(out), out.logits[:, -1]
    if share_prefill and group_size > 1:
        cache.batch_repeat_interleave(group_size)
        logits = logits.repeat_interleave(group_size, dim=0)
        prompt_mask = prompt_mask.repeat_interleave(group_size, dim=0)
    n = logits.shape[0]
    next_position = prompt_mask.sum(-1)
    tokens = torch.full((n, params.max_new_tokens), pad_token_id, dtype=torch.long, device=device)
    finished = torch.zeros(n, dtype=torch.bool, device=device)
    rows = torch.arange(n, device=device)  # the rows of the full batch that the cache holds
    mask = prompt_mask
    decoder = (fast_decode.FastDecoder(model, cache, prompt_mask, params.max_new_tokens)
               if fast and fast_decode.supports(model) else None)
    steps = 0
    for step in range(params.max_new_tokens):
        # One random draw per row of the full batch, in row order, whichever rows have finished: a row's
        # samples then do not depend on the others (and a shared prefill gives the same samples as none).
        full_logits = logits if len(rows) == n else logits.new_zeros(n, logits.shape[-1]).index_copy_(0, rows, logits)
        chosen = sample_next(full_logits, params, generator)[rows]
        running = ~finished[rows]
        tokens[rows[running], step] = chosen[running]
        finished[rows[running & torch.isin(chosen, eos)]] = True
        steps = step + 1
        still = ~finished[rows]
        if step + 1 == params.max_new_tokens or not bool(still.any()):
            break
        # Finished rows leave the batch once they are a quarter of it: copying the cache costs about as
        # much as a few decoding steps of the rows it removes.
        if int((~still).sum()) * 4 >= len(rows):
            keep = still.nonzero().squeeze(-1)
            decoder.select(keep) if decoder is not None else cache.batch_select_indices(keep)
            rows, chosen, mask, next_position = rows[keep], chosen[keep], mask[keep], next_position[keep]
        if decoder is not None:
            logits = decoder.step(chosen, next_position)
        else:
            mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
            out = model(input_ids=chosen[:, None], attention_mask=mask, position_ids=next_position[:, None],
                        use_cache=True, **{key: cache})
            cache, logits = output_cache(out), out.logits[:, -1]
        next_position = next_position + 1
    return tokens[:, :steps], finished


def _response_mask(response_ids: torch.Tensor, eos: torch.Tensor) -> torch.Tensor:
    """1 up to and including a row's first EOS (every position of a row cut at max_new_tokens)."""
    is_eos = torch.isin(response_ids, eos).long()
    return ((is_eos.cumsum(-1) - is_eos) == 0).long()


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device
