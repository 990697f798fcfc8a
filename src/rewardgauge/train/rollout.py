"""The parts of an RL step before the loss: prompts, sampling, decoding, scoring, and what gets logged.

The recipe (``train/rl.py``) calls them in this order each step::

    batch = prompts_for_step(prompts, step, per_step, seed)          # B prompts, the same after a resume
    gen = backend.generate(encode(batch), params, G, seed=...)         # N = B·G responses (token ids)
    texts = decode_responses(tokenizer, gen)
    scores = reward.score(prompts, texts, meta=...)                    # any RewardModel
    components = score_components(scores)                              # every member / aspect, for metrics
    rows = sample_rows(step, ...)                                      # samples.jsonl
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rewardgauge.data.records import Prompt, prompt_text
from rewardgauge.data.steps import split_steps
from rewardgauge.errors import InputError
from rewardgauge.io import iter_jsonl
from rewardgauge.modeling.generation import Generation
from rewardgauge.rewards.base import Scores


@dataclass
class RLPrompt:
    """A prompt to optimise on, and what the reward needs to know about it (task id, lab family...)."""

    prompt: Prompt
    meta: dict[str, Any] = field(default_factory=dict)


def load_rl_prompts(path: str | os.PathLike) -> list[RLPrompt]:
    """Rows with a ``prompt`` (text or chat messages): any other fields (``id``, ``family``, ``task_id``...)
    and a ``meta`` mapping become the prompt's meta. A code-task file (MBPP / HumanEval / native, as
    ``rewardgauge tasks`` reads it) gives each task's public prompt with its ``task_id``."""
    rows = list(iter_jsonl(path))
    if rows and "prompt" not in rows[0][1]:
        from rewardgauge.rewards.execution import task_prompts

        try:
            return [RLPrompt(prompt, meta) for prompt, meta in task_prompts(path)]
        except InputError as e:
            raise InputError(f"neither prompts (no 'prompt' field) nor code tasks: {e.message}",
                             path=path, line=rows[0][0], field="prompt") from None
    prompts = []
    for line, obj in rows:
        prompt = obj.get("prompt")
        is_chat = isinstance(prompt, list) and prompt and all(
            isinstance(m, dict) and isinstance(m.get("content"), str) for m in prompt)
        if not (isinstance(prompt, str) and prompt.strip()) and not is_chat:
            raise InputError("must be a non-empty string or a list of chat messages", path=path, line=line,
                             field="prompt")
        meta = obj.get("meta") or {}
        if not isinstance(meta, dict):
            raise InputError("must be a mapping", path=path, line=line, field="meta")
        extra = {k: v for k, v in obj.items() if k not in ("prompt", "meta")}
        prompts.append(RLPrompt(prompt, {**extra, **meta}))
    if not prompts:
        raise InputError("no prompts", path=path, field="prompts")
    return prompts


def prompts_for_step(n_prompts: int, step: int, per_step: int, seed: int) -> list[int]:
    """Indices of the ``per_step`` prompts of optimizer step ``step`` (0-based): epochs of a seeded
    permutation, so the batch depends only on (seed, step) and a resumed run draws what an uninterrupted
    one would."""
    out: list[int] = []
    start = step * per_step
    while len(out) < per_step:
        epoch, offset = divmod(start + len(out), n_prompts)
        order = np.random.default_rng([seed, epoch]).permutation(n_prompts)
        out.extend(order[offset:offset + per_step - len(out)].tolist())
    return out


def decode_responses(tokenizer, gen: Generation) -> list[str]:
    """Each response's text without its EOS and padding (special tokens dropped)."""
    return tokenizer.batch_decode(gen.response_token_lists(), skip_special_tokens=True)


def step_token_ends(tokenizer, token_lists: Sequence[Sequence[int]], texts: Sequence[str],
                    separator: str) -> list[list[int]]:
    """For each response, the index of the token where each of its steps ends (``split_steps(text,
    separator)``, the cut a process reward model scores): the first token whose decoded prefix reaches the
    step's last character. A step the tokens cannot place ends at the last token."""
    out = []
    for tokens, text in zip(token_lists, texts):
        ends, position = [], 0
        for step in split_steps(text, separator):
            start = text.find(step, position)
            position = (start if start >= 0 else position) + len(step)
            ends.append(position)
        if not ends:
            out.append([])
            continue
        decoded = tokenizer.batch_decode([tokens[:k + 1] for k in range(len(tokens))], skip_special_tokens=True)
        lengths = [len(t.rstrip()) for t in decoded]
        last = max(0, len(tokens) - 1)
        out.append([next((k for k, n in enumerate(lengths) if n >= end), last) for end in ends])
    return out


def dense_step_rewards(scores: Scores, tokenizer, gen: Generation, texts: Sequence[str],
                       separator: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A process reward model's step scores laid out for a dense reward: ([N, S] step rewards, [N, S] the
    response token where each step ends, [N, S] mask: 1 for a scored step). Steps cut off by the reward
    model's max_length (NaN) are masked out."""
    if scores.steps is None:
        raise ValueError("a dense reward needs per-step scores (Scores.steps): a process reward model")
    ends = step_token_ends(tokenizer, gen.response_token_lists(), texts, separator)
    width = max([len(s) for s in scores.steps] + [1])
    n = len(scores.steps)
    rewards, positions, mask = torch.zeros(n, width), torch.zeros(n, width, dtype=torch.long), torch.zeros(n, width)
    for i, (steps, step_ends) in enumerate(zip(scores.steps, ends)):
        if len(steps) != len(step_ends):
            raise ValueError(f"response {i}: {len(steps)} step scores but {len(step_ends)} steps in its text")
        steps = steps.detach().float().cpu()
        rewards[i, :len(steps)] = steps.nan_to_num(0.0)
        positions[i, :len(steps)] = torch.as_tensor(step_ends, dtype=torch.long)
        mask[i, :len(steps)] = (~steps.isnan()).float()
    device = gen.response_ids.device
    return rewards.to(device), positions.to(device), mask.to(device)


def score_components(scores: Scores) -> dict[str, torch.Tensor]:
    """[N] tensors of every part of a reward: ``member_k`` per ensemble member, each aspect by its name
    (a weighted sum's components are aspects), ``uncertainty``."""
    parts: dict[str, torch.Tensor] = {}
    if scores.members is not None:
        for k, row in enumerate(scores.members):
            parts[f"member_{k}"] = row
    for name, values in (scores.aspects or {}).items():
        parts[name] = values
    if scores.uncertainty is not None:
        parts["uncertainty"] = scores.uncertainty
    return parts


def _round(x: float) -> float | None:
    return round(x, 5) if math.isfinite(x) else None


def sample_rows(step: int, prompts: Sequence[Prompt], responses: Sequence[str], group_size: int,
                values: dict[str, torch.Tensor], limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` rollouts of this step for samples.jsonl, whole groups first: the prompt, the response,
    and every per-response value given (reward, each component, gold, advantage, length...)."""
    columns = {k: v.detach().float().cpu().tolist() for k, v in values.items()}
    rows = []
    for i, response in enumerate(responses[:limit]):
        row: dict[str, Any] = {"step": step, "group": i // group_size, "prompt": prompt_text(prompts[i // group_size]),
                               "response": response}
        row.update({k: _round(v[i]) for k, v in columns.items()})
        rows.append(row)
    return rows
